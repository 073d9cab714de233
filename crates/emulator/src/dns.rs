//! `/zones` and `/zones/{z}/dns_records` (§5).
//!
//! Rules: names are lowercased and made fully qualified (`@` is the apex,
//! `app` becomes `app.<zone>`); a record identical to another (type, name,
//! content) is 400/81058; a CNAME where an A, AAAA or CNAME of that name
//! exists is 400/81053; an A or AAAA where a CNAME exists is 400/81054; an
//! unknown record id is 404/81044; an unknown zone id is 400/7003+7000.
//! Field validation answers 400/1004 "DNS Validation Error" with the detail
//! in `error_chain` (codes 9000–9207, chosen by the emulator). Proxied
//! records have `ttl` 1. List filters: `type`, `name[.exact|.contains|
//! .startswith|.endswith]`, the same for `content`, `proxied`, `comment` and
//! `comment.*`, `tag` and `tag.*`, combined by `match` and `tag_match`;
//! `order`, `direction`, `page`, `per_page` (1–5 000 000, default 100).

use super::http::{ok, ok_page, paginate, parse_object, ApiError, ApiResult, Query, DNS_PAGES, ZONE_PAGES};
use super::state::{hex32, now, Data};
use super::Emulator;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use dockflare_cloudflare::codes;
use dockflare_cloudflare::types::{ApiMessage, DeletedId, DnsRecord, Zone};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::net::{Ipv4Addr, Ipv6Addr};

const RECORD_TYPES: [&str; 21] = [
    "A",
    "AAAA",
    "CAA",
    "CERT",
    "CNAME",
    "DNSKEY",
    "DS",
    "HTTPS",
    "LOC",
    "MX",
    "NAPTR",
    "NS",
    "OPENPGPKEY",
    "PTR",
    "SMIMEA",
    "SRV",
    "SSHFP",
    "SVCB",
    "TLSA",
    "TXT",
    "URI",
];
/// Body keys kept on the record beyond the modelled ones.
const PASSTHROUGH_KEYS: [&str; 3] = ["priority", "data", "settings"];

fn record_not_found() -> ApiError {
    ApiError::new(404, codes::DNS_RECORD_NOT_FOUND, "Record does not exist.")
}

fn body_invalid() -> ApiError {
    ApiError::bad_request(9207, "Request body is invalid.")
}

/// 400 1004 "DNS Validation Error" with `code`/`message` in `error_chain`.
fn validation(code: i64, message: impl Into<String>) -> ApiError {
    let mut error = ApiMessage::new(1004, "DNS Validation Error");
    error.extra.insert("error_chain".into(), json!([{"code": code, "message": message.into()}]));
    ApiError::with_errors(400, vec![error])
}

fn is_proxiable(record_type: &str) -> bool {
    matches!(record_type, "A" | "AAAA" | "CNAME")
}

/// A record's writable fields, read from a body over defaults or over the
/// record a PATCH changes.
struct Fields {
    record_type: String,
    name: String,
    content: String,
    proxied: bool,
    ttl: u32,
    comment: Option<String>,
    tags: Vec<String>,
    passthrough: Map<String, Value>,
}

impl Fields {
    fn read(body: &Map<String, Value>, base: Option<&DnsRecord>) -> Result<Fields, ApiError> {
        fn string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
            match body.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(body_invalid()),
            }
        }
        let record_type = string(body, "type")?.or_else(|| base.map(|r| r.record_type.clone()));
        let name = string(body, "name")?.or_else(|| base.map(|r| r.name.clone()));
        let content = string(body, "content")?.or_else(|| base.map(|r| r.content.clone()));
        let proxied = match body.get("proxied") {
            None => base.is_some_and(|r| r.proxied),
            Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(body_invalid()),
        };
        let ttl = match body.get("ttl") {
            None => base.map_or(1, |r| r.ttl),
            Some(Value::Null) => 1,
            Some(value) => match value.as_u64().and_then(|t| u32::try_from(t).ok()) {
                Some(ttl) => ttl,
                None => {
                    return Err(validation(
                        9021,
                        "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
                    ))
                }
            },
        };
        let comment = match body.get("comment") {
            None => base.and_then(|r| r.comment.clone()),
            Some(_) => string(body, "comment")?.filter(|c| !c.is_empty()),
        };
        let tags = match body.get("tags") {
            None => base.map(|r| r.tags.clone()).unwrap_or_default(),
            Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|t| t.as_str().map(str::to_string).ok_or_else(body_invalid))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(body_invalid()),
        };
        let mut passthrough = Map::new();
        for key in PASSTHROUGH_KEYS {
            if let Some(value) = body.get(key).or_else(|| base.and_then(|r| r.extra.get(key))) {
                passthrough.insert(key.to_string(), value.clone());
            }
        }
        Ok(Fields {
            record_type: record_type.unwrap_or_default().trim().to_ascii_uppercase(),
            name: name.unwrap_or_default(),
            content: content.unwrap_or_default(),
            proxied,
            ttl,
            comment,
            tags,
            passthrough,
        })
    }

    /// Normalizes the name and checks every field.
    fn validate(mut self, zone: &str) -> Result<Fields, ApiError> {
        if !RECORD_TYPES.contains(&self.record_type.as_str()) {
            return Err(validation(9020, "Invalid DNS record type"));
        }
        self.name = fqdn(&self.name, zone).ok_or_else(|| validation(9000, "DNS name is invalid."))?;
        let content = self.content.trim().to_string();
        match self.record_type.as_str() {
            "A" if content.parse::<Ipv4Addr>().is_err() => {
                return Err(validation(9005, "Content for A record must be a valid IPv4 address."));
            }
            "AAAA" if content.parse::<Ipv6Addr>().is_err() => {
                return Err(validation(9006, "Content for AAAA record must be a valid IPv6 address."));
            }
            "CNAME" => {
                if !valid_hostname(content.trim_end_matches('.')) {
                    return Err(validation(9007, "Content for CNAME record is invalid."));
                }
                if content.trim_end_matches('.').eq_ignore_ascii_case(&self.name) {
                    return Err(validation(9039, "CNAME content cannot reference itself."));
                }
            }
            other if content.is_empty() => {
                return Err(validation(9008, format!("Content for {other} record is invalid.")));
            }
            _ => {}
        }
        self.content = content;
        if self.proxied && !is_proxiable(&self.record_type) {
            return Err(validation(9004, "This record type cannot be proxied."));
        }
        if self.ttl != 1 && !(60..=86400).contains(&self.ttl) {
            return Err(validation(9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."));
        }
        if self.proxied {
            self.ttl = 1;
        }
        if self.comment.as_deref().is_some_and(|c| c.contains(['\n', '\r'])) {
            return Err(validation(9101, "DNS record comment cannot contain line breaks."));
        }
        Ok(self)
    }
}

/// `name` fully qualified in `zone` and lowercased; `None` if invalid.
fn fqdn(name: &str, zone: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    let full = if name == "@" || name == zone {
        zone.to_string()
    } else if name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    };
    let labels_ok = full.split('.').enumerate().all(|(i, label)| {
        !label.is_empty()
            && (label == "*" && i == 0 || label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_'))
    });
    (full.len() <= 255 && labels_ok).then_some(full)
}

fn valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '*'))
}

impl Data {
    fn zone_by_id(&self, zone_id: &str, path: &str) -> Result<usize, ApiError> {
        self.zones.iter().position(|z| z.zone.id == zone_id).ok_or_else(|| ApiError::no_route(path))
    }

    /// 81058 / 81053 / 81054 against the zone's other records.
    fn check_conflicts(&self, zone: usize, fields: &Fields, except: Option<&str>) -> Result<(), ApiError> {
        let others = self.zones.get(zone).map(|z| z.records.as_slice()).unwrap_or_default();
        let same_name = || others.iter().filter(|r| Some(r.id.as_str()) != except && r.name == fields.name);
        if same_name().any(|r| r.record_type == fields.record_type && r.content.eq_ignore_ascii_case(&fields.content)) {
            return Err(ApiError::bad_request(codes::DNS_IDENTICAL_RECORD, "An identical record already exists."));
        }
        match fields.record_type.as_str() {
            "CNAME" if same_name().any(|r| matches!(r.record_type.as_str(), "A" | "AAAA" | "CNAME")) => {
                Err(ApiError::bad_request(
                    codes::DNS_NAME_TAKEN,
                    "An A, AAAA, or CNAME record with that host already exists.",
                ))
            }
            "A" | "AAAA" if same_name().any(|r| r.record_type == "CNAME") => {
                Err(ApiError::bad_request(81054, "A CNAME record with that host already exists."))
            }
            _ => Ok(()),
        }
    }

    fn build_record(fields: Fields, id: String, created_on: String, previous: Option<&DnsRecord>) -> DnsRecord {
        let modified_on = now();
        let mut extra = fields.passthrough;
        extra.insert("proxiable".into(), json!(is_proxiable(&fields.record_type)));
        extra.entry("settings").or_insert_with(|| json!({}));
        extra.insert("meta".into(), json!({}));
        let comment_changed = previous.is_none_or(|p| p.comment != fields.comment);
        let tags_changed = previous.is_none_or(|p| p.tags != fields.tags);
        let keep = |key: &str| previous.and_then(|p| p.extra.get(key)).cloned();
        if fields.comment.is_some() {
            let stamp = if comment_changed { Some(json!(modified_on)) } else { keep("comment_modified_on") };
            extra.insert("comment_modified_on".into(), stamp.unwrap_or_else(|| json!(modified_on)));
        }
        if !fields.tags.is_empty() {
            let stamp = if tags_changed { Some(json!(modified_on)) } else { keep("tags_modified_on") };
            extra.insert("tags_modified_on".into(), stamp.unwrap_or_else(|| json!(modified_on)));
        }
        DnsRecord {
            id,
            record_type: fields.record_type,
            name: fields.name,
            content: fields.content,
            proxied: fields.proxied,
            ttl: fields.ttl,
            comment: fields.comment,
            tags: fields.tags,
            created_on,
            modified_on,
            extra,
        }
    }

    fn create_record(&mut self, zone: usize, body: &Map<String, Value>) -> Result<DnsRecord, ApiError> {
        let zone_name = self.zones.get(zone).map(|z| z.zone.name.clone()).unwrap_or_default();
        let fields = Fields::read(body, None)?.validate(&zone_name)?;
        self.check_conflicts(zone, &fields, None)?;
        let record = Data::build_record(fields, hex32(), now(), None);
        if let Some(z) = self.zones.get_mut(zone) {
            z.records.push(record.clone());
        }
        Ok(record)
    }

    /// PUT (`patch == false`: omitted fields take defaults) or PATCH.
    fn update_record(
        &mut self,
        zone: usize,
        record_id: &str,
        body: &Map<String, Value>,
        patch: bool,
    ) -> Result<DnsRecord, ApiError> {
        let zone_entry = self.zones.get(zone).ok_or_else(record_not_found)?;
        let zone_name = zone_entry.zone.name.clone();
        let index = zone_entry.records.iter().position(|r| r.id == record_id).ok_or_else(record_not_found)?;
        let previous = zone_entry.records.get(index).cloned().ok_or_else(record_not_found)?;
        let fields = Fields::read(body, patch.then_some(&previous))?.validate(&zone_name)?;
        self.check_conflicts(zone, &fields, Some(record_id))?;
        let record = Data::build_record(fields, previous.id.clone(), previous.created_on.clone(), Some(&previous));
        if let Some(slot) = self.zones.get_mut(zone).and_then(|z| z.records.get_mut(index)) {
            *slot = record.clone();
        }
        Ok(record)
    }

    fn delete_record(&mut self, zone: usize, record_id: &str) -> Result<(), ApiError> {
        let records = &mut self.zones.get_mut(zone).ok_or_else(record_not_found)?.records;
        let index = records.iter().position(|r| r.id == record_id).ok_or_else(record_not_found)?;
        records.remove(index);
        Ok(())
    }

    pub(super) fn seed_dns_record(&mut self, zone: &str, body: &Map<String, Value>) -> Result<DnsRecord, ApiError> {
        let index = self.zone_index(zone).ok_or_else(|| ApiError::new(404, 1001, format!("Unknown zone {zone}")))?;
        self.create_record(index, body)
    }

    pub(super) fn delete_dns_record_anywhere(&mut self, record_id: &str) -> Result<(), ApiError> {
        let zone =
            self.zones.iter().position(|z| z.records.iter().any(|r| r.id == record_id)).ok_or_else(record_not_found)?;
        self.delete_record(zone, record_id)
    }
}

/// Case-insensitive `exact`, `contains`, `startswith`, `endswith`.
fn text_matches(op: &str, actual: &str, wanted: &str) -> Result<bool, ApiError> {
    let actual = actual.to_lowercase();
    let wanted = wanted.to_lowercase();
    Ok(match op {
        "" | "exact" => actual == wanted,
        "contains" => actual.contains(&wanted),
        "startswith" => actual.starts_with(&wanted),
        "endswith" => actual.ends_with(&wanted),
        _ => return Err(ApiError::bad_request(1001, format!("Invalid request: unknown filter operator {op:?}"))),
    })
}

/// A tag filter; `value` is `name` or `name:value`.
fn tag_matches(op: &str, tags: &[String], value: &str) -> Result<bool, ApiError> {
    let split = |tag: &str| -> (String, String) {
        match tag.split_once(':') {
            Some((n, v)) => (n.to_lowercase(), v.to_string()),
            None => (tag.to_lowercase(), String::new()),
        }
    };
    let parsed: Vec<(String, String)> = tags.iter().map(|t| split(t)).collect();
    let has_name = |name: &str| parsed.iter().any(|(n, _)| *n == name.to_lowercase());
    Ok(match op {
        "" if !value.contains(':') => has_name(value),
        "present" => has_name(value),
        "absent" => !has_name(value),
        "" | "exact" | "contains" | "startswith" | "endswith" => {
            let (name, wanted) = split(value);
            let mut any = false;
            for (_, v) in parsed.iter().filter(|(n, _)| *n == name) {
                any |= text_matches(op, v, &wanted)?;
            }
            any
        }
        _ => return Err(ApiError::bad_request(1001, format!("Invalid request: unknown filter operator {op:?}"))),
    })
}

/// Whether `record` passes the list filters of `query`.
fn record_matches(record: &DnsRecord, query: &Query) -> Result<bool, ApiError> {
    let mut plain: Vec<bool> = Vec::new();
    let mut tags: Vec<bool> = Vec::new();
    for (key, value) in query.pairs() {
        let (field, op) = key.split_once('.').unwrap_or((key, ""));
        match field {
            "type" => plain.push(record.record_type.eq_ignore_ascii_case(value)),
            "name" => plain.push(text_matches(op, &record.name, value.trim_end_matches('.'))?),
            "content" => plain.push(text_matches(op, &record.content, value)?),
            "proxied" => plain.push(Some(record.proxied) == query.bool("proxied")?),
            "comment" => plain.push(match (op, record.comment.as_deref()) {
                ("present", comment) => comment.is_some(),
                ("absent", comment) => comment.is_none(),
                (_, None) => false,
                (op, Some(comment)) => text_matches(op, comment, value)?,
            }),
            "tag" => tags.push(tag_matches(op, &record.tags, value)?),
            _ => {}
        }
    }
    if !tags.is_empty() {
        let any = query.get("tag_match").is_some_and(|m| m.eq_ignore_ascii_case("any"));
        plain.push(if any { tags.iter().any(|t| *t) } else { tags.iter().all(|t| *t) });
    }
    if plain.is_empty() {
        return Ok(true);
    }
    let any = query.get("match").is_some_and(|m| m.eq_ignore_ascii_case("any"));
    Ok(if any { plain.iter().any(|p| *p) } else { plain.iter().all(|p| *p) })
}

fn sort_records(records: &mut [DnsRecord], query: &Query) -> Result<(), ApiError> {
    let key = query.get("order").unwrap_or("type");
    let compare: fn(&DnsRecord, &DnsRecord) -> Ordering = match key {
        "type" => |a, b| a.record_type.cmp(&b.record_type),
        "name" => |a, b| a.name.cmp(&b.name),
        "content" => |a, b| a.content.cmp(&b.content),
        "ttl" => |a, b| a.ttl.cmp(&b.ttl),
        "proxied" => |a, b| a.proxied.cmp(&b.proxied),
        other => return Err(ApiError::bad_request(1001, format!("Invalid request: cannot order by {other:?}"))),
    };
    let descending = query.get("direction").is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    records.sort_by(|a, b| if descending { compare(b, a) } else { compare(a, b) });
    Ok(())
}

/// `name` filter of `/zones`: `equal:` (default), `not_equal:`,
/// `starts_with:`, `ends_with:`, `contains:`, each also `_case_sensitive`.
fn zone_name_matches(name: &str, filter: &str) -> bool {
    let (op, value) = match filter.split_once(':') {
        Some((op, value)) if op.chars().all(|c| c.is_ascii_lowercase() || c == '_') => (op, value),
        _ => ("equal", filter),
    };
    let (op, sensitive) = match op.strip_suffix("_case_sensitive") {
        Some(op) => (op, true),
        None => (op, false),
    };
    let (name, value) =
        if sensitive { (name.to_string(), value.to_string()) } else { (name.to_lowercase(), value.to_lowercase()) };
    match op {
        "not_equal" => name != value,
        "starts_with" => name.starts_with(&value),
        "ends_with" => name.ends_with(&value),
        "contains" => name.contains(&value),
        _ => name == value,
    }
}

pub(super) async fn list_zones(State(emulator): State<Emulator>, uri: Uri) -> ApiResult {
    let query = Query::from_uri(&uri);
    let mut zones: Vec<Zone> = emulator
        .data()
        .zones
        .iter()
        .map(|z| &z.zone)
        .filter(|z| query.get("name").is_none_or(|n| zone_name_matches(&z.name, n)))
        .filter(|z| query.get("status").is_none_or(|s| z.status.eq_ignore_ascii_case(s)))
        .filter(|z| query.get("account.id").is_none_or(|a| z.account.id.eq_ignore_ascii_case(a)))
        .filter(|z| query.get("account.name").is_none_or(|a| z.account.name == a))
        .cloned()
        .collect();
    zones.sort_by(|a, b| a.name.cmp(&b.name));
    if query.get("direction").is_some_and(|d| d.eq_ignore_ascii_case("desc")) {
        zones.reverse();
    }
    let (page, info) = paginate(zones, &query, ZONE_PAGES)?;
    Ok(ok_page(page, info))
}

pub(super) async fn get_zone(State(emulator): State<Emulator>, Path(zone_id): Path<String>, uri: Uri) -> ApiResult {
    let data = emulator.data();
    let index = data.zone_by_id(&zone_id, uri.path())?;
    let zone = data.zones.get(index).map(|z| z.zone.clone()).ok_or_else(|| ApiError::no_route(uri.path()))?;
    Ok(ok(zone))
}

pub(super) async fn list_records(State(emulator): State<Emulator>, Path(zone_id): Path<String>, uri: Uri) -> ApiResult {
    let query = Query::from_uri(&uri);
    let mut records = {
        let data = emulator.data();
        let index = data.zone_by_id(&zone_id, uri.path())?;
        let all = data.zones.get(index).map(|z| z.records.as_slice()).unwrap_or_default();
        let mut matching = Vec::new();
        for record in all {
            if record_matches(record, &query)? {
                matching.push(record.clone());
            }
        }
        matching
    };
    sort_records(&mut records, &query)?;
    let (page, info) = paginate(records, &query, DNS_PAGES)?;
    Ok(ok_page(page, info))
}

pub(super) async fn create_record(
    State(emulator): State<Emulator>,
    Path(zone_id): Path<String>,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let mut data = emulator.data();
    let zone = data.zone_by_id(&zone_id, uri.path())?;
    let body = parse_object(&body, 9207, "Request body is invalid.")?;
    let record = data.create_record(zone, &body)?;
    Ok(ok(record))
}

pub(super) async fn get_record(
    State(emulator): State<Emulator>,
    Path((zone_id, record_id)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    let data = emulator.data();
    let zone = data.zone_by_id(&zone_id, uri.path())?;
    let record = data.zones.get(zone).and_then(|z| z.records.iter().find(|r| r.id == record_id)).cloned();
    record.map(ok).ok_or_else(record_not_found)
}

async fn update(
    emulator: Emulator,
    zone_id: String,
    record_id: String,
    uri: Uri,
    body: Bytes,
    patch: bool,
) -> ApiResult {
    let mut data = emulator.data();
    let zone = data.zone_by_id(&zone_id, uri.path())?;
    let body = parse_object(&body, 9207, "Request body is invalid.")?;
    let record = data.update_record(zone, &record_id, &body, patch)?;
    Ok(ok(record))
}

pub(super) async fn put_record(
    State(emulator): State<Emulator>,
    Path((zone_id, record_id)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    update(emulator, zone_id, record_id, uri, body, false).await
}

pub(super) async fn patch_record(
    State(emulator): State<Emulator>,
    Path((zone_id, record_id)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    update(emulator, zone_id, record_id, uri, body, true).await
}

pub(super) async fn delete_record(
    State(emulator): State<Emulator>,
    Path((zone_id, record_id)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    let mut data = emulator.data();
    let zone = data.zone_by_id(&zone_id, uri.path())?;
    data.delete_record(zone, &record_id)?;
    Ok(ok(DeletedId { id: record_id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_qualified() {
        let zone = "example.test";
        assert_eq!(fqdn("App", zone).as_deref(), Some("app.example.test"));
        assert_eq!(fqdn("@", zone).as_deref(), Some("example.test"));
        assert_eq!(fqdn("a.example.test.", zone).as_deref(), Some("a.example.test"));
        assert_eq!(fqdn("*.a", zone).as_deref(), Some("*.a.example.test"));
        assert_eq!(fqdn("a b", zone), None);
        assert_eq!(fqdn("a..b", zone), None);
        assert_eq!(fqdn("a.*", zone), None);
    }

    #[test]
    fn tag_filters() {
        let tags = vec!["managed-by:dockflare".to_string(), "team:Web".to_string()];
        let check = |op: &str, value: &str| tag_matches(op, &tags, value).unwrap_or(false);
        assert!(check("", "team:web"));
        assert!(check("", "team"));
        assert!(!check("", "owner"));
        assert!(check("present", "Managed-By"));
        assert!(check("absent", "owner"));
        assert!(check("contains", "managed-by:flare"));
        assert!(check("startswith", "team:w"));
        assert!(!check("endswith", "team:x"));
    }

    #[test]
    fn zone_name_operators() {
        assert!(zone_name_matches("example.test", "Example.Test"));
        assert!(zone_name_matches("example.test", "ends_with:.test"));
        assert!(!zone_name_matches("example.test", "equal_case_sensitive:Example.test"));
        assert!(zone_name_matches("example.test", "not_equal:other.test"));
    }
}
