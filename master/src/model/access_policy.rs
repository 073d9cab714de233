//! An operator-defined Cloudflare Access policy (DockFlare's "Access Groups", declared): a name
//! that container labels refer to (`dockflare.access.policy`, `dockflare.access.group`), a
//! decision and Cloudflare's rule objects. Plain data; validated by [`crate::access_policies`],
//! stored by the store, synced to the account's reusable policies by the reconciler.

use serde_json::Value;

/// Where an operator-defined policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicySource {
    /// PutAccessPolicy (the CLI's `access policy put`).
    Api,
    /// The master's `--access-policies` file (reloaded on SIGHUP).
    File,
}

impl PolicySource {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicySource::Api => "api",
            PolicySource::File => "file",
        }
    }

    /// The source a stored word names (strictly: anything else is `None`).
    pub fn parse(text: &str) -> Option<PolicySource> {
        match text {
            "api" => Some(PolicySource::Api),
            "file" => Some(PolicySource::File),
            _ => None,
        }
    }
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator-defined Access policy. Every value has been validated
/// ([`crate::access_policies::validate`]) before it reaches the store.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorPolicy {
    /// 1–64 characters of `[a-z0-9._-]`, not a keyword of the access labels.
    pub name: String,
    /// `allow`, `deny`, `non_identity` or `bypass`.
    pub decision: String,
    /// Cloudflare rule objects (`{"email": {"email": "a@b.c"}}`, …); at least one.
    pub include: Vec<Value>,
    pub exclude: Vec<Value>,
    pub require: Vec<Value>,
    /// Go duration syntax (`24h`, `2h45m`); `None`: the application's.
    pub session_duration: Option<String>,
    pub source: PolicySource,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
}

impl OperatorPolicy {
    /// Whether `other` defines the same policy (name, decision, rules, session), whatever its
    /// source and time.
    pub fn same_definition(&self, other: &OperatorPolicy) -> bool {
        self.name == other.name
            && self.decision == other.decision
            && self.include == other.include
            && self.exclude == other.exclude
            && self.require == other.require
            && self.session_duration == other.session_duration
    }
}

/// A stored policy with what the admin API shows beside the definition.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAccessPolicy {
    pub policy: OperatorPolicy,
    /// 1 when created, one more at each change.
    pub revision: i64,
    /// The admin identity that put it (API), or the file's path (file).
    pub created_by: String,
}
