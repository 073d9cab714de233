//! The Cloudflare API error codes DockFlare acts on, by name (shared/reference/cloudflare-api.md).
//! The emulator answers with the same codes.

/// 409 on `POST cfd_tunnel`: a tunnel with this name already exists.
pub const TUNNEL_NAME_TAKEN: i64 = 1013;
/// 404 on `GET …/configurations`: the tunnel has no configuration yet.
pub const TUNNEL_CONFIGURATION_NOT_FOUND: i64 = 1055;
/// A DNS record id that does not exist.
pub const DNS_RECORD_NOT_FOUND: i64 = 81044;
/// An A, AAAA or CNAME record with that name already exists (CNAMEs are exclusive).
pub const DNS_NAME_TAKEN: i64 = 81053;
/// The record already exists (older wording of [`DNS_IDENTICAL_RECORD`]).
pub const DNS_RECORD_EXISTS: i64 = 81057;
/// An identical record already exists.
pub const DNS_IDENTICAL_RECORD: i64 = 81058;
/// 403: the token lacks the permission for the resource (seen on `GET /user`).
pub const UNAUTHORIZED_RESOURCE: i64 = 9109;
/// 403: "Authentication error" — the token lacks the permission for this call (also a
/// token that is not accepted at all).
pub const AUTHENTICATION_ERROR: i64 = 10000;
