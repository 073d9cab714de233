//! Reads the zones' records and writes the CNAMEs the plan asks for: wanted hostnames
//! round-robin across agents ([`crate::reconcile::fairness`]), then the records of hostnames no
//! route needs. What goes wrong lands on the hostname it concerns.

use super::plan::{self as dns_plan, DnsAction, FoundRecord, Hostnames};
use crate::model::RouteRow;
use crate::reconcile::zones::ZoneRef;
use crate::reconcile::{fairness, PassReport};
use dockflare_cloudflare::client::{CfError, CloudflareClient};
use dockflare_cloudflare::codes;
use dockflare_cloudflare::types::{DnsRecord, DnsRecordRequest};
use std::collections::{BTreeSet, HashMap};

/// The records of the zones a pass touches, by lower-case name.
#[derive(Debug, Default)]
pub struct ZoneRecords {
    pub by_name: HashMap<String, Vec<FoundRecord>>,
    /// Zones whose records could not be read: nothing is written there this pass.
    pub unreadable: BTreeSet<String>,
}

impl ZoneRecords {
    fn at(&self, hostname: &str) -> &[FoundRecord] {
        self.by_name.get(hostname).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// What the DNS step found, per hostname.
#[derive(Debug, Default)]
pub struct DnsOutcome {
    /// A record appeared or is foreign: the hostname's routes are conflicts.
    pub conflicts: HashMap<String, String>,
    /// A write failed: the hostname's routes carry the error.
    pub errors: HashMap<String, String>,
    /// Writes were left for the next pass ([`fairness::WRITES_PER_HOLDER`]).
    pub backlog: bool,
}

/// Writes this installation's records.
pub struct DnsWriter<'a> {
    pub client: &'a CloudflareClient,
    pub installation_id: &'a str,
    /// A dry run: writes are recorded here instead ([`crate::reconcile::dry_run`]).
    pub dry_run: Option<&'a crate::reconcile::dry_run::DryRun>,
}

impl DnsWriter<'_> {
    /// The records of every zone a hostname of the pass lives in.
    pub async fn observe(
        &self,
        hostnames: &Hostnames,
        zone_of: &HashMap<String, ZoneRef>,
        report: &mut PassReport,
    ) -> ZoneRecords {
        let zone_ids: BTreeSet<&str> = hostnames.all().filter_map(|h| zone_of.get(h)).map(|z| z.id.as_str()).collect();
        let mut records = ZoneRecords::default();
        for zone_id in zone_ids {
            match self.client.dns_records(zone_id).await {
                Ok(found) => {
                    for record in found {
                        records.by_name.entry(record.name.to_ascii_lowercase()).or_default().push(found_record(record));
                    }
                }
                Err(error) => {
                    report.errors.push(format!("listing DNS records of zone {zone_id}: {error}"));
                    records.unreadable.insert(zone_id.to_string());
                }
            }
        }
        records
    }

    /// Brings every hostname of the pass in line: wanted ones round-robin by holder, at most
    /// [`fairness::WRITES_PER_HOLDER`] writes each; then the unwanted ones.
    pub async fn apply(
        &self,
        hostnames: &Hostnames,
        rows: &[RouteRow],
        zone_of: &HashMap<String, ZoneRef>,
        records: &ZoneRecords,
        report: &mut PassReport,
    ) -> DnsOutcome {
        let mut outcome = DnsOutcome::default();
        let mut writes: HashMap<String, u32> = HashMap::new();
        for (holder, hostname, target) in &fairness::round_robin(&hostnames.wanted, rows) {
            if writes.get(holder).is_some_and(|n| *n >= fairness::WRITES_PER_HOLDER) {
                outcome.backlog = true;
                continue;
            }
            let written_before = writes_of(report);
            let Some(zone) = zone_of.get(hostname) else { continue };
            if records.unreadable.contains(&zone.id) {
                outcome.errors.insert(hostname.clone(), "DNS: the zone's records could not be read".into());
                continue;
            }
            match self.sync_record(&zone.id, hostname, Some(target), records.at(hostname), report).await {
                Ok(Some(conflict)) => {
                    outcome.conflicts.insert(hostname.clone(), conflict);
                }
                Ok(None) => {}
                Err(error) => {
                    outcome.errors.insert(hostname.clone(), format!("DNS: {error}"));
                }
            }
            if writes_of(report) > written_before {
                *writes.entry(holder.clone()).or_default() += 1;
            }
        }
        for hostname in &hostnames.unwanted {
            let Some(zone) = zone_of.get(hostname) else { continue };
            if records.unreadable.contains(&zone.id) {
                continue;
            }
            if let Err(error) = self.sync_record(&zone.id, hostname, None, records.at(hostname), report).await {
                report.errors.push(format!("removing DNS record of {hostname}: {error}"));
            }
        }
        outcome
    }

    /// Brings one hostname's records in line; `Some(reason)` on a conflict.
    async fn sync_record(
        &self,
        zone_id: &str,
        hostname: &str,
        target: Option<&str>,
        found: &[FoundRecord],
        report: &mut PassReport,
    ) -> Result<Option<String>, CfError> {
        let request = |target: &str| DnsRecordRequest {
            record_type: "CNAME".into(),
            name: hostname.to_string(),
            content: target.to_string(),
            proxied: Some(true),
            ttl: Some(1),
            comment: Some(dns_plan::marker_comment(self.installation_id)),
            tags: Vec::new(),
        };
        for action in dns_plan::plan(hostname, target, found, self.installation_id) {
            if let Some(dry) = self.dry_run {
                match &action {
                    DnsAction::Create => dry.record("dns", "create", hostname, format!("CNAME → {}", target.unwrap_or(""))),
                    DnsAction::Update { id } => {
                        dry.record("dns", "update", hostname, format!("CNAME → {} ({id})", target.unwrap_or("")))
                    }
                    DnsAction::Delete { id } => dry.record("dns", "delete", hostname, format!("record {id}")),
                    DnsAction::Conflict(reason) => return Ok(Some(reason.clone())),
                }
                continue;
            }
            match action {
                DnsAction::Create => {
                    let Some(target) = target else { continue };
                    match self.client.create_dns_record(zone_id, &request(target)).await {
                        Ok(_) => {
                            report.dns_created += 1;
                            metrics::counter!("dockflare_dns_writes_total", "action" => "create").increment(1);
                            tracing::info!(message = "DNS record created.", %hostname, %target);
                        }
                        Err(error)
                            if error.has_code(codes::DNS_NAME_TAKEN)
                                || error.has_code(codes::DNS_RECORD_EXISTS)
                                || error.has_code(codes::DNS_IDENTICAL_RECORD) =>
                        {
                            return Ok(Some(format!("a DNS record for {hostname} appeared meanwhile: {error}")));
                        }
                        Err(error) => return Err(error),
                    }
                }
                DnsAction::Update { id } => {
                    let Some(target) = target else { continue };
                    self.client.update_dns_record(zone_id, &id, &request(target)).await?;
                    report.dns_updated += 1;
                    metrics::counter!("dockflare_dns_writes_total", "action" => "update").increment(1);
                    tracing::info!(message = "DNS record updated.", %hostname, %target);
                }
                DnsAction::Delete { id } => {
                    self.client.delete_dns_record(zone_id, &id).await?;
                    report.dns_deleted += 1;
                    metrics::counter!("dockflare_dns_writes_total", "action" => "delete").increment(1);
                    tracing::info!(message = "DNS record deleted.", %hostname);
                }
                DnsAction::Conflict(reason) => return Ok(Some(reason)),
            }
        }
        Ok(None)
    }
}

fn writes_of(report: &PassReport) -> u32 {
    report.dns_created + report.dns_updated + report.dns_deleted
}

fn found_record(record: DnsRecord) -> FoundRecord {
    FoundRecord {
        id: record.id,
        record_type: record.record_type,
        content: record.content,
        proxied: record.proxied,
        comment: record.comment.unwrap_or_default(),
    }
}
