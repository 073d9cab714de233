//! Which TCP connections the master takes: at most a total number (kept below
//! the open-files limit, so that the database and files always get a
//! descriptor), and at most a number per source, so one peer cannot take the
//! room the fleet needs. IPv6 sources count per /64 (one host usually owns a
//! whole /64); IPv4-mapped IPv6 addresses count as the IPv4 address.
//!
//! Admission hands out a [`ConnectionSlot`] that gives the room back when the
//! connection ends (it is dropped with the connection). [`crate::call_limits`]
//! counts calls without a certificate the same way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` connections are open.
    TotalLimit,
    /// `--max-connections-per-source` connections are open from this source.
    PerSourceLimit,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TotalLimit => "max_connections",
            Refusal::PerSourceLimit => "max_connections_per_source",
        }
    }
}

/// The source a connection counts against.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// The open connections, counted. Cloning shares the counts.
#[derive(Debug, Clone)]
pub struct Admission {
    max_total: usize,
    max_per_source: usize,
    open: Arc<Mutex<Open>>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_source: usize) -> Admission {
        Admission { max_total: max_total.max(1), max_per_source: max_per_source.max(1), open: Arc::default() }
    }

    /// Takes room for a connection from `ip`, or says why there is none.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let source = source_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.total >= self.max_total {
            return Err(Refusal::TotalLimit);
        }
        let from_source = open.per_source.entry(source).or_default();
        if *from_source >= self.max_per_source {
            return Err(Refusal::PerSourceLimit);
        }
        *from_source += 1;
        open.total += 1;
        Ok(ConnectionSlot { source, open: self.open.clone() })
    }

    /// Connections open now (total).
    pub fn open_connections(&self) -> usize {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).total
    }
}

/// Room taken by one connection; dropping it gives the room back.
#[derive(Debug)]
pub struct ConnectionSlot {
    source: IpAddr,
    open: Arc<Mutex<Open>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_source.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_source.remove(&self.source);
            }
        }
    }
}

/// The default `--max-connections`: the open-files limit less room for the
/// database pool, the emulator, logs and files.
pub fn default_max_connections(open_files_limit: u64) -> usize {
    const RESERVED: u64 = 256;
    usize::try_from(open_files_limit.saturating_sub(RESERVED).max(64)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn each_source_gets_its_share_and_the_total_is_a_ceiling() {
        let admission = Admission::new(5, 2);
        let a1 = admission.admit(ip("10.0.0.1")).expect("first");
        let _a2 = admission.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(admission.admit(ip("10.0.0.1")).unwrap_err(), Refusal::PerSourceLimit);
        let _b1 = admission.admit(ip("10.0.0.2")).expect("another source");
        let _b2 = admission.admit(ip("10.0.0.2")).expect("another source, second");
        let _c1 = admission.admit(ip("10.0.0.3")).expect("fifth");
        assert_eq!(admission.admit(ip("10.0.0.4")).unwrap_err(), Refusal::TotalLimit);
        drop(a1);
        assert_eq!(admission.open_connections(), 4);
        let _a3 = admission.admit(ip("10.0.0.1")).expect("room given back");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(source_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(source_key(ip("2001:db8:1:2:bbbb::9")), ip("2001:db8:1:2::"));
        assert_eq!(source_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let admission = Admission::new(10, 1);
        let _one = admission.admit(ip("2001:db8::1")).expect("first");
        assert_eq!(admission.admit(ip("2001:db8::2")).unwrap_err(), Refusal::PerSourceLimit);
        assert!(admission.admit(ip("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn the_default_total_leaves_room_below_the_open_files_limit() {
        assert_eq!(default_max_connections(4096), 3840);
        assert_eq!(default_max_connections(1_048_576), 1_048_320);
        assert_eq!(default_max_connections(100), 64);
    }
}
