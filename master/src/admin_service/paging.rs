//! One paging style for every List call: `page_size` (0: 100, at most 1000), an opaque
//! `page_token` and `next_page_token` (empty on the last page). A token is the key of the last
//! item of its page, with the call that issued it, as base64url JSON: opaque to clients,
//! checked here — one this master did not issue for the call is INVALID_ARGUMENT naming
//! `page_token`. Items are ordered by their key, so a page starts right after the token's key
//! even when items came or went in between.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// Page size when the request says 0.
pub const DEFAULT_PAGE: u32 = 100;
/// The largest page; larger requests get this many.
pub const MAX_PAGE: u32 = 1000;

/// One component of an item's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Part {
    Int(i64),
    Text(String),
}

impl From<&str> for Part {
    fn from(text: &str) -> Part {
        Part::Text(text.to_string())
    }
}

impl From<String> for Part {
    fn from(text: String) -> Part {
        Part::Text(text)
    }
}

impl From<i64> for Part {
    fn from(number: i64) -> Part {
        Part::Int(number)
    }
}

/// Where an item sits in its list: the list is ordered by it.
pub type Key = Vec<Part>;

/// What a page token holds.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    /// The call that issued it.
    call: String,
    /// The key of the last item of the page it follows.
    after: Key,
}

/// A List request's page: how many items, after which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    call: &'static str,
    pub size: usize,
    /// `None`: the first page.
    pub after: Option<Key>,
}

/// The page size a request asks for: 0 is [`DEFAULT_PAGE`], anything above [`MAX_PAGE`] is
/// [`MAX_PAGE`].
pub fn page_size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

impl PageRequest {
    /// The page of `call` that `page_size` and `page_token` ask for.
    pub fn parse(call: &'static str, page_size: u32, page_token: &str) -> Result<PageRequest, Status> {
        let after = if page_token.is_empty() { None } else { Some(decode(call, page_token)?) };
        Ok(PageRequest { call, size: self::page_size(page_size) as usize, after })
    }

    /// The token of the page after the one that ends with `last`.
    pub fn token_after(&self, last: &Key) -> String {
        let token = Token { call: self.call.to_string(), after: last.clone() };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
    }

    /// One page of `items` (each with its key, in any order) and the token of the next page
    /// ("" when this is the last).
    pub fn page<T>(&self, mut items: Vec<(Key, T)>) -> (Vec<T>, String) {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let start = match &self.after {
            Some(after) => items.partition_point(|(key, _)| key <= after),
            None => 0,
        };
        let mut rest = items.into_iter().skip(start);
        let page: Vec<(Key, T)> = rest.by_ref().take(self.size).collect();
        let next = match (rest.next(), page.last()) {
            (Some(_), Some((last, _))) => self.token_after(last),
            _ => String::new(),
        };
        (page.into_iter().map(|(_, item)| item).collect(), next)
    }

    /// The next page's token for a page read from a store that was asked for `size + 1` items
    /// (`fetched`, in key order): the extra item is dropped, and its presence means more follow.
    pub fn trim<T>(&self, mut fetched: Vec<T>, key: impl Fn(&T) -> Key) -> (Vec<T>, String) {
        if fetched.len() <= self.size {
            return (fetched, String::new());
        }
        fetched.truncate(self.size);
        let next = fetched.last().map(|last| self.token_after(&key(last))).unwrap_or_default();
        (fetched, next)
    }

    /// The text component `index` of the token's key ("" on the first page).
    pub fn after_text(&self, index: usize) -> Result<String, Status> {
        match self.after.as_ref().map(|key| key.get(index)) {
            None => Ok(String::new()),
            Some(Some(Part::Text(text))) => Ok(text.clone()),
            Some(_) => Err(invalid(self.call)),
        }
    }

    /// The number component `index` of the token's key (0 on the first page).
    pub fn after_number(&self, index: usize) -> Result<u64, Status> {
        match self.after.as_ref().map(|key| key.get(index)) {
            None => Ok(0),
            Some(Some(Part::Int(number))) => u64::try_from(*number).map_err(|_| invalid(self.call)),
            Some(_) => Err(invalid(self.call)),
        }
    }
}

/// The page of an append-only log (ListCommands, ListEvents), which also takes the deprecated
/// `limit` (counted when `page_size` is 0) and `after_field` (`after`: where the first page
/// starts; not together with a page token). Returns the page and the number to list after.
pub fn log_page(
    call: &'static str,
    page_size: u32,
    limit: u32,
    page_token: &str,
    after_field: &str,
    after: u64,
) -> Result<(PageRequest, u64), Status> {
    if after != 0 && !page_token.is_empty() {
        return Err(Status::invalid_argument(format!(
            "page_token: set page_token or the deprecated {after_field}, not both"
        )));
    }
    let page = PageRequest::parse(call, if page_size == 0 { limit } else { page_size }, page_token)?;
    let start = if page_token.is_empty() { after } else { page.after_number(0)? };
    Ok((page, start))
}

/// `items` with keys made distinct: an item whose key another already has gets its occurrence
/// appended (so that equal items are neither skipped nor repeated across pages).
pub fn distinct<T>(mut items: Vec<(Key, T)>) -> Vec<(Key, T)> {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let mut previous: Option<Key> = None;
    let mut occurrence = 0;
    for (key, _) in items.iter_mut() {
        occurrence = if previous.as_ref() == Some(key) { occurrence + 1 } else { 0 };
        previous = Some(key.clone());
        key.push(Part::Int(occurrence));
    }
    items
}

fn invalid(call: &str) -> Status {
    Status::invalid_argument(format!(
        "page_token: not a page token of {call} (pass the next_page_token of the previous page, unchanged)"
    ))
}

fn decode(call: &str, page_token: &str) -> Result<Key, Status> {
    let bytes = URL_SAFE_NO_PAD.decode(page_token.trim()).map_err(|_| invalid(call))?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| invalid(call))?;
    if token.call != call {
        return Err(invalid(call));
    }
    Ok(token.after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(names: &[&str]) -> Vec<(Key, String)> {
        names.iter().map(|name| (vec![Part::from(*name)], name.to_string())).collect()
    }

    #[test]
    fn page_sizes_default_to_100_and_stop_at_1000() {
        assert_eq!(page_size(0), 100);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(1000), 1000);
        assert_eq!(page_size(5000), 1000);
    }

    #[test]
    fn pages_follow_the_key_order_and_the_last_has_no_token() {
        let parse = |size, token: &str| PageRequest::parse("ListThings", size, token).unwrap();
        let (page, next) = parse(2, "").page(items(&["c", "a", "d", "b", "e"]));
        assert_eq!(page, ["a", "b"]);
        let (page, next) = parse(2, &next).page(items(&["a", "b", "c", "d", "e"]));
        assert_eq!(page, ["c", "d"]);
        // An item that came in before the token's key does not shift the next page.
        let (page, last) = parse(2, &next).page(items(&["a", "b", "bb", "c", "d", "e"]));
        assert_eq!((page, last), (vec!["e".to_string()], String::new()));
        // Exactly full: no token, no empty page after it.
        let (page, next) = parse(5, "").page(items(&["a", "b", "c", "d", "e"]));
        assert_eq!((page.len(), next), (5, String::new()));
    }

    #[test]
    fn a_store_page_of_size_plus_one_says_whether_more_follow() {
        let request = PageRequest::parse("ListNumbers", 2, "").unwrap();
        let key = |n: &i64| vec![Part::Int(*n)];
        let (page, next) = request.trim(vec![1i64, 2, 3], key);
        assert_eq!(page, [1, 2]);
        let after = PageRequest::parse("ListNumbers", 2, &next).and_then(|p| p.after_number(0));
        assert_eq!(after.ok(), Some(2));
        assert_eq!(request.trim(vec![1i64, 2], key), (vec![1, 2], String::new()));
    }

    #[test]
    fn logs_take_the_deprecated_limit_and_start_but_not_with_a_token() {
        let (page, start) = log_page("ListLog", 0, 7, "", "after_sequence", 3).unwrap();
        assert_eq!((page.size, start), (7, 3));
        let (page, _) = log_page("ListLog", 2, 7, "", "after_sequence", 0).unwrap();
        assert_eq!(page.size, 2, "page_size wins over limit");
        let token = page.token_after(&vec![Part::Int(9)]);
        assert_eq!(log_page("ListLog", 2, 0, &token, "after_sequence", 0).map(|(_, start)| start).ok(), Some(9));
        let both = log_page("ListLog", 2, 0, &token, "after_sequence", 1).err().map(|s| s.message().to_string());
        assert_eq!(both.as_deref(), Some("page_token: set page_token or the deprecated after_sequence, not both"));
    }

    #[test]
    fn equal_keys_are_made_distinct() {
        let keyed = distinct(vec![(vec![Part::from("b")], 1), (vec![Part::from("a")], 2), (vec![Part::from("b")], 3)]);
        let keys: Vec<Key> = keyed.into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            [
                vec![Part::from("a"), Part::Int(0)],
                vec![Part::from("b"), Part::Int(0)],
                vec![Part::from("b"), Part::Int(1)]
            ]
        );
    }

    #[test]
    fn tokens_that_this_call_did_not_issue_are_refused_naming_page_token() {
        let other = PageRequest::parse("ListOther", 1, "").unwrap().token_after(&vec![Part::from("x")]);
        for token in ["not a token", "eyJ9", other.as_str(), "e30"] {
            let status = PageRequest::parse("ListThings", 1, token).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{token}");
            assert!(status.message().starts_with("page_token: not a page token of ListThings"), "{token}");
        }
        // A token of the right call whose key has the wrong shape.
        let text = PageRequest::parse("ListThings", 1, "").unwrap().token_after(&vec![Part::from("x")]);
        assert!(PageRequest::parse("ListThings", 1, &text).unwrap().after_number(0).is_err());
    }
}
