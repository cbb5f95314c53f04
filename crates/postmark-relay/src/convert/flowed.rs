//! `format=flowed` text (RFC 3676) unwrapped for `TextBody`.
//!
//! A flowed message breaks its paragraphs into short lines, each ending in a space ("soft"
//! line breaks); a reader is meant to join them again. Postmark shows `TextBody` as it is, so
//! the relay joins them: a line that ends in a space is joined with the next one of the same
//! quote depth (§4.2), with `DelSp=yes` the trailing space is removed first (§4.3), and one
//! space after the quote marks is space-stuffing and removed (§4.4). The signature separator
//! `-- ` is never flowed (§4.3). Quoted lines are written back as `>` marks and a space.

/// Whether a part's `Content-Type` parameters ask for flowed text, and for `DelSp=yes`.
pub(crate) fn flowed_params(content_type: Option<&mail_parser::ContentType<'_>>) -> Option<bool> {
    let ct = content_type?;
    let format = ct.attribute("format")?;
    if !format.eq_ignore_ascii_case("flowed") {
        return None;
    }
    Some(ct.attribute("delsp").is_some_and(|d| d.eq_ignore_ascii_case("yes")))
}

/// `text` with its soft line breaks removed (see the module documentation). Line ends are
/// written as the text wrote its first one (CRLF or LF).
pub(crate) fn unwrap(text: &str, delsp: bool) -> String {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let ends_with_eol = text.ends_with('\n');
    let body = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    // The paragraph being joined: its quote depth and whether its last line was soft.
    let mut open: Option<usize> = None;
    for raw in body.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let depth = line.bytes().take_while(|&b| b == b'>').count();
        let content = &line[depth..];
        let content = content.strip_prefix(' ').unwrap_or(content);
        let soft = content.ends_with(' ') && content != "-- ";
        match open {
            Some(d) if d == depth => {}
            Some(_) => {
                // A quote depth change ends the paragraph (§4.5): the soft break stays hard.
                out.push_str(eol);
                push_prefix(&mut out, depth);
            }
            None => push_prefix(&mut out, depth),
        }
        let kept = if soft && delsp { &content[..content.len() - 1] } else { content };
        out.push_str(kept);
        if soft {
            open = Some(depth);
        } else {
            out.push_str(eol);
            open = None;
        }
    }
    if open.is_some() {
        // A soft break on the last line ends nothing: the text ends there.
        if ends_with_eol {
            out.push_str(eol);
        }
    } else if !ends_with_eol {
        out.truncate(out.len() - eol.len());
    }
    out
}

fn push_prefix(out: &mut String, depth: usize) {
    if depth > 0 {
        out.extend(std::iter::repeat_n('>', depth));
        out.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::unwrap;

    #[test]
    fn soft_breaks_are_joined_and_hard_ones_kept() {
        let text = "This is a long \r\nparagraph that \r\nwraps.\r\nNext line.\r\n\r\n-- \r\nSig\r\n";
        assert_eq!(unwrap(text, false), "This is a long paragraph that wraps.\r\nNext line.\r\n\r\n-- \r\nSig\r\n");
    }

    #[test]
    fn delsp_removes_the_space_before_a_soft_break() {
        // DelSp=yes is for languages without spaces between words (and for long words).
        assert_eq!(unwrap("Donau\r\ndampf \r\nschiff\r\n", true), "Donau\r\ndampfschiff\r\n");
        assert_eq!(unwrap("a \nb\n", false), "a b\n");
    }

    #[test]
    fn quotes_and_space_stuffing() {
        let text = "> quoted \r\n> text\r\n>> deeper \r\nreply \r\n From here\r\n";
        assert_eq!(unwrap(text, false), "> quoted text\r\n>> deeper \r\nreply From here\r\n");
        // No line end at the end stays so.
        assert_eq!(unwrap("one \r\ntwo", false), "one two");
        assert_eq!(unwrap("", false), "");
    }
}
