//! The names this host goes by in mail, which make an address local (`root@localhost`,
//! `root@<hostname>`, as mutt and mailutils write them), and the mail domain a bare sender
//! (`root`, `www-data`) gets when `local_domain` is not set: Debian's `/etc/mailname` (what
//! Debian's MTAs use), else the host's fully-qualified name. The mail name only qualifies: an
//! address at it is not local (it is usually a real domain with mailboxes elsewhere).

use std::path::PathBuf;

/// Where the host's names are read from (the system's files, or a test's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFiles {
    /// Debian's mail name: `/etc/mailname`.
    pub mailname: PathBuf,
    /// The kernel's host name: `/proc/sys/kernel/hostname`.
    pub hostname: PathBuf,
    /// Where a short host name finds its fully-qualified one: `/etc/hosts`.
    pub hosts: PathBuf,
}

impl HostFiles {
    /// The system's files.
    pub fn system() -> Self {
        Self {
            mailname: "/etc/mailname".into(),
            hostname: "/proc/sys/kernel/hostname".into(),
            hosts: "/etc/hosts".into(),
        }
    }
}

/// The host's names, as found in [`HostFiles`]; each lower-case, `None` when not found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNames {
    /// The first line of `/etc/mailname`, when it is a domain name.
    pub mailname: Option<String>,
    /// The kernel's host name (`vm`, `web1.example.com`).
    pub hostname: Option<String>,
    /// The fully-qualified host name: the host name when it has a dot, else the first name of
    /// the `/etc/hosts` line that lists it, when that one has a dot.
    pub fqdn: Option<String>,
}

impl HostNames {
    /// Reads the names from `files`; a missing or unreadable file gives no name.
    pub fn detect(files: &HostFiles) -> Self {
        let first_line = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.lines().next().map(|l| l.trim().trim_end_matches('.').to_ascii_lowercase()))
                .filter(|s| is_domain(s))
        };
        let mailname = first_line(&files.mailname).filter(|s| s.contains('.'));
        let hostname = first_line(&files.hostname);
        let fqdn = hostname.as_deref().and_then(|host| {
            if host.contains('.') {
                return Some(host.to_owned());
            }
            let hosts = std::fs::read_to_string(&files.hosts).ok()?;
            hosts.lines().find_map(|line| {
                let line = line.split('#').next().unwrap_or_default();
                let mut names = line.split_whitespace().skip(1).map(str::to_ascii_lowercase);
                let canonical = names.next()?;
                let listed = canonical == host || names.any(|n| n == host);
                let canonical = canonical.trim_end_matches('.').to_owned();
                (listed && canonical.contains('.') && is_domain(&canonical)).then_some(canonical)
            })
        });
        Self { mailname, hostname, fqdn }
    }

    /// The mail domain of a bare sender when `local_domain` is not set: the mail name, else the
    /// fully-qualified host name.
    pub fn mail_domain(&self) -> Option<&str> {
        self.mailname.as_deref().or(self.fqdn.as_deref())
    }

    /// Every domain that means this host: `localhost`, `localhost.localdomain` and the host's
    /// names. Not the mail name: that is often the organisation's real mail domain
    /// (`example.com` on `web1.example.com`), whose other mailboxes are elsewhere (as Postfix's
    /// `myorigin` is not its `mydestination`).
    pub fn local_domains(&self) -> Vec<String> {
        let mut out = vec!["localhost".to_owned(), "localhost.localdomain".to_owned()];
        for name in [&self.hostname, &self.fqdn].into_iter().flatten() {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(mailname: Option<&str>, hostname: &str, hosts: &str) -> (tempfile::TempDir, HostFiles) {
        let dir = tempfile::tempdir().unwrap();
        let files = HostFiles {
            mailname: dir.path().join("mailname"),
            hostname: dir.path().join("hostname"),
            hosts: dir.path().join("hosts"),
        };
        if let Some(m) = mailname {
            std::fs::write(&files.mailname, m).unwrap();
        }
        std::fs::write(&files.hostname, hostname).unwrap();
        std::fs::write(&files.hosts, hosts).unwrap();
        (dir, files)
    }

    #[test]
    fn the_mail_name_comes_before_the_fully_qualified_host_name() {
        let (_d, f) = files(Some("Mail.Example.com\n"), "web1\n", "127.0.1.1 web1.example.com web1\n");
        let names = HostNames::detect(&f);
        assert_eq!(names.mailname.as_deref(), Some("mail.example.com"));
        assert_eq!(names.fqdn.as_deref(), Some("web1.example.com"));
        assert_eq!(names.mail_domain(), Some("mail.example.com"));
        assert_eq!(names.local_domains(), ["localhost", "localhost.localdomain", "web1", "web1.example.com"]);
    }

    #[test]
    fn without_a_mail_name_the_fqdn_from_etc_hosts_is_the_mail_domain() {
        let hosts = "# comment web1\n127.0.0.1 localhost\n127.0.1.1\tweb1.example.com  web1 # the host\n";
        let (_d, f) = files(None, "web1", hosts);
        assert_eq!(HostNames::detect(&f).mail_domain(), Some("web1.example.com"));
        let (_d, f) = files(None, "db.example.org", "");
        assert_eq!(HostNames::detect(&f).mail_domain(), Some("db.example.org"));
    }

    #[test]
    fn a_dotless_host_without_mail_name_has_no_mail_domain() {
        // A container: `127.0.0.1 localhost` and the hostname's own line without a dot.
        let (_d, f) = files(None, "3f2a9c1b7d0e", "127.0.0.1 localhost\n172.17.0.2 3f2a9c1b7d0e\n");
        let names = HostNames::detect(&f);
        assert_eq!(names.mail_domain(), None);
        assert_eq!(names.local_domains(), ["localhost", "localhost.localdomain", "3f2a9c1b7d0e"]);
        // A mail name that is no domain (or a bare word) is not used.
        let (_d, f) = files(Some("not a domain\n"), "vm", "");
        assert_eq!(HostNames::detect(&f).mail_domain(), None);
        let (_d, f) = files(Some("vm\n"), "vm", "");
        assert_eq!(HostNames::detect(&f).mailname, None);
        // Missing files.
        let names = HostNames::detect(&HostFiles {
            mailname: "/nonexistent/mailname".into(),
            hostname: "/nonexistent/hostname".into(),
            hosts: "/nonexistent/hosts".into(),
        });
        assert_eq!(names, HostNames::default());
    }
}
