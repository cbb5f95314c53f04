//! Streams over Postmark's `count`/`offset` listings.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use futures_core::Stream;

use crate::Error;

/// The largest page Postmark serves (`count` may not exceed 500).
pub const MAX_PAGE_SIZE: i64 = 500;

/// How far Postmark pages bounces and messages: `count + offset` may not exceed 10,000.
pub const MESSAGE_WINDOW: i64 = 10_000;

/// A stream of the items of a listing, fetched page by page.
pub type ItemStream<'a, T> = Pin<Box<dyn Stream<Item = Result<T, Error>> + Send + 'a>>;

/// One page: Postmark's `TotalCount` and the page's items.
pub type Page<T> = (i64, Vec<T>);

struct State<F, T> {
    fetch: F,
    offset: i64,
    total: Option<i64>,
    buffer: VecDeque<T>,
    done: bool,
}

/// Streams every item of a listing: `fetch(count, offset)` gets one page, called with [`MAX_PAGE_SIZE`] and growing
/// offsets until `TotalCount` items were seen or a page comes back empty.
///
/// With a `window` (e.g. [`MESSAGE_WINDOW`]), the pages never reach past it (`count + offset ≤ window`); when
/// `TotalCount` says more results exist beyond it, the stream ends with [`Error::PageWindow`] after the last
/// reachable item, instead of stopping silently. Any error ends the stream after it is yielded.
pub fn stream<'a, T, F, Fut>(operation: &'static str, window: Option<i64>, fetch: F) -> ItemStream<'a, T>
where
    T: Send + 'a,
    F: FnMut(i64, i64) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Page<T>, Error>> + Send + 'a,
{
    let state = State { fetch, offset: 0, total: None, buffer: VecDeque::new(), done: false };
    Box::pin(futures_util::stream::unfold(state, move |mut s| async move {
        loop {
            if let Some(item) = s.buffer.pop_front() {
                return Some((Ok(item), s));
            }
            if s.done || s.total.is_some_and(|t| s.offset >= t) {
                return None;
            }
            let mut count = MAX_PAGE_SIZE;
            if let Some(w) = window {
                if s.offset >= w {
                    s.done = true;
                    let total = s.total.unwrap_or(s.offset);
                    return Some((Err(Error::PageWindow { operation: operation.to_string(), total, window: w }), s));
                }
                count = count.min(w - s.offset);
            }
            match (s.fetch)(count, s.offset).await {
                Ok((total, items)) => {
                    s.total = Some(total);
                    if items.is_empty() {
                        s.done = true;
                    }
                    s.offset += items.len() as i64;
                    s.buffer.extend(items);
                }
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
            }
        }
    }))
}

/// Gives a generated listing builder a `stream()` method (used by the client crates, one line per listing):
/// `paged_listing!(ListBounces => Bounce, bounces, Some(MESSAGE_WINDOW));`
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // reason: `crate::generated` must name the invoking crate's generated module
macro_rules! paged_listing {
    ($($builder:ident => $item:ident, $field:ident, $window:expr;)*) => {
        $(
            impl<'a> crate::generated::builder::$builder<'a> {
                #[doc = concat!(
                    "Every [`", stringify!($item), "`](crate::types::", stringify!($item), ") this query matches, ",
                    "fetched in pages of ", stringify!(500), " (the most Postmark serves) until `TotalCount` is reached.\n\n",
                    "`count` and `offset` set on the builder are ignored; every other filter applies to each page. ",
                    "Items are fetched lazily as the stream is polled; the first error ends it. ",
                    "See [`postmark_core::paging::stream`] for the paging window."
                )]
                pub fn stream(self) -> $crate::paging::ItemStream<'a, crate::types::$item> {
                    $crate::paging::stream(stringify!($builder), $window, move |count, offset| {
                        let request = self.clone().count(count).offset(offset);
                        async move {
                            let page = $crate::ResultExt::into_postmark(request.send().await)?;
                            Ok((page.total_count, page.$field))
                        }
                    })
                }
            }
        )*
    };
}
