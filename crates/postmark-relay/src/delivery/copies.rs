//! A message's API requests as delivery takes them (see [`super::api`]): handed over built with
//! the message, or built from the converted message one by one, so that a message to many hidden
//! recipients holds one batch of copies rather than all of them.

use postmark_server::types::SendEmailRequest;

use crate::convert;

/// A message's requests as delivery takes them: handed over built, or built as they go.
pub(super) enum Copies {
    /// Built at accept time and handed over with the message.
    Built(std::vec::IntoIter<SendEmailRequest>),
    /// Built from the converted message one by one.
    Planned(convert::Requests),
}

impl Copies {
    /// How many requests are left.
    pub(super) fn len(&self) -> usize {
        match self {
            Copies::Built(reqs) => reqs.len(),
            Copies::Planned(reqs) => reqs.len(),
        }
    }

    /// How many converted requests this holds now.
    #[cfg(test)]
    fn held(&self) -> usize {
        match self {
            Copies::Built(reqs) => reqs.len(),
            Copies::Planned(reqs) => reqs.held(),
        }
    }
}

impl Iterator for Copies {
    type Item = SendEmailRequest;

    fn next(&mut self) -> Option<SendEmailRequest> {
        match self {
            Copies::Built(reqs) => reqs.next(),
            Copies::Planned(reqs) => reqs.next(),
        }
    }
}

/// The requests of several messages in turn, each with its message's index and its place among
/// the message's copies, each built when taken.
pub(super) struct Taken {
    pub(super) pending: std::vec::IntoIter<(usize, Copies)>,
    pub(super) current: Option<(usize, usize, Copies)>,
    /// The next request, built to see whether it fits the batch.
    pub(super) peeked: Option<(usize, usize, SendEmailRequest)>,
}

impl Taken {
    /// The next request, built but left in place.
    pub(super) fn peek(&mut self) -> Option<&(usize, usize, SendEmailRequest)> {
        if self.peeked.is_none() {
            self.peeked = self.build();
        }
        self.peeked.as_ref()
    }

    /// The next request, taken.
    pub(super) fn next(&mut self) -> Option<(usize, usize, SendEmailRequest)> {
        self.peeked.take().or_else(|| self.build())
    }

    fn build(&mut self) -> Option<(usize, usize, SendEmailRequest)> {
        loop {
            if let Some((i, k, reqs)) = &mut self.current
                && let Some(request) = reqs.next()
            {
                *k += 1;
                return Some((*i, *k - 1, request));
            }
            let (i, reqs) = self.pending.next()?;
            self.current = Some((i, 0, reqs));
        }
    }

    /// How many converted requests are held, not yet taken.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        let current = self.current.as_ref().map_or(0, |(_, _, reqs)| reqs.held());
        usize::from(self.peeked.is_some())
            + current
            + self.pending.as_slice().iter().map(|(_, r)| r.held()).sum::<usize>()
    }
}
