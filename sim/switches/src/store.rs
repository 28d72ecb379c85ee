//! The simulated switches' durable memory: one redb file with every switch's rules and meters,
//! and which switches and links were failed through `/sim/`. Real switches keep their rules when
//! the controller restarts; with this store the simulated ones do too.
//!
//! The fabric keeps its in-memory maps and writes each change through, in one write
//! transaction, before it answers.

use std::path::{Path, PathBuf};

use hubspoke_fsm::dataplane::RuleMatch;
use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{Isl, SwitchId};
use redb::{Database, ReadableTable, TableDefinition};

/// The store's file name inside a data directory.
pub const SWITCH_STORE_FILE: &str = "switches.redb";

/// (switch id, in_port, in_vlan) → the rule as JSON: one rule per match, as on a switch.
const RULES: TableDefinition<(u64, u32, u16), &str> = TableDefinition::new("rules_by_match");
/// Where an earlier version kept the rules, by (switch id, cookie); moved on open.
const RULES_BY_COOKIE: TableDefinition<(u64, u64), &str> = TableDefinition::new("rules");
/// (switch id, meter id) → rate in kbps.
const METERS: TableDefinition<(u64, u32), u64> = TableDefinition::new("meters");
/// Switches failed through `/sim/` (they do not answer).
const FAILED_SWITCHES: TableDefinition<u64, ()> = TableDefinition::new("failed_switches");
/// Directed ISLs failed through `/sim/`: (src switch, src port, dst switch, dst port).
const FAILED_LINKS: TableDefinition<(u64, u32, u64, u32), ()> =
    TableDefinition::new("failed_links");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("switch store {}: {source}", path.display())]
    Redb {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("switch store {}: a rule of switch {switch_id} is unreadable: {source}", path.display())]
    BadRule {
        path: PathBuf,
        switch_id: SwitchId,
        #[source]
        source: serde_json::Error,
    },
}

/// One change to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The rule now on the switch at this match, or none.
    Rule {
        switch_id: SwitchId,
        rule_match: RuleMatch,
        rule: Option<FlowSegment>,
    },
    /// The meter's rate now, or none.
    Meter {
        switch_id: SwitchId,
        meter_id: u32,
        rate_kbps: Option<u64>,
    },
    SwitchFailed {
        switch_id: SwitchId,
        failed: bool,
    },
    LinkFailed {
        isl: Isl,
        failed: bool,
    },
}

/// Everything the store holds, as read at start.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub rules: Vec<FlowSegment>,
    pub meters: Vec<(SwitchId, u32, u64)>,
    pub failed_switches: Vec<SwitchId>,
    pub failed_links: Vec<Isl>,
}

pub(crate) struct SwitchStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for SwitchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn rule_key(switch_id: SwitchId, rule_match: &RuleMatch) -> (u64, u32, u16) {
    (switch_id.0, rule_match.in_port, rule_match.in_vlan)
}

fn isl_key(isl: &Isl) -> (u64, u32, u64, u32) {
    (
        isl.src_switch.0,
        isl.src_port,
        isl.dst_switch.0,
        isl.dst_port,
    )
}

/// redb caches 1 GiB by default; the tables live in memory too (the store only keeps them
/// across restarts), so its cache need not hold them.
const CACHE_BYTES: usize = 32 << 20;

impl SwitchStore {
    /// Opens the file, creating it (and its tables) if missing.
    pub fn open(path: &Path) -> Result<SwitchStore, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::Redb {
                path: path.to_path_buf(),
                source: Box::new(e.into()),
            })?;
        let store = SwitchStore {
            db,
            path: path.to_path_buf(),
        };
        store.create_tables()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn decode(&self, switch_id: SwitchId, json: &str) -> Result<FlowSegment, StoreError> {
        serde_json::from_str(json).map_err(|source| StoreError::BadRule {
            path: self.path.clone(),
            switch_id,
            source,
        })
    }

    fn redb(&self, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Redb {
            path: self.path.clone(),
            source: Box::new(source.into()),
        }
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.redb(e))?;
        {
            let mut rules = tx.open_table(RULES).map_err(|e| self.redb(e))?;
            let mut by_cookie = tx.open_table(RULES_BY_COOKIE).map_err(|e| self.redb(e))?;
            for entry in by_cookie.iter().map_err(|e| self.redb(e))? {
                let (key, value) = entry.map_err(|e| self.redb(e))?;
                let switch_id = SwitchId(key.value().0);
                let rule = self.decode(switch_id, value.value())?;
                rules
                    .insert(rule_key(switch_id, &rule.rule_match()), value.value())
                    .map_err(|e| self.redb(e))?;
            }
            by_cookie.retain(|_, _| false).map_err(|e| self.redb(e))?;
            tx.open_table(METERS).map_err(|e| self.redb(e))?;
            tx.open_table(FAILED_SWITCHES).map_err(|e| self.redb(e))?;
            tx.open_table(FAILED_LINKS).map_err(|e| self.redb(e))?;
        }
        tx.commit().map_err(|e| self.redb(e))
    }

    pub fn load(&self) -> Result<Stored, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.redb(e))?;
        let mut stored = Stored::default();
        let rules = tx.open_table(RULES).map_err(|e| self.redb(e))?;
        for entry in rules.iter().map_err(|e| self.redb(e))? {
            let (key, value) = entry.map_err(|e| self.redb(e))?;
            let (switch, _, _) = key.value();
            stored
                .rules
                .push(self.decode(SwitchId(switch), value.value())?);
        }
        let meters = tx.open_table(METERS).map_err(|e| self.redb(e))?;
        for entry in meters.iter().map_err(|e| self.redb(e))? {
            let (key, value) = entry.map_err(|e| self.redb(e))?;
            let (switch, meter_id) = key.value();
            stored
                .meters
                .push((SwitchId(switch), meter_id, value.value()));
        }
        let switches = tx.open_table(FAILED_SWITCHES).map_err(|e| self.redb(e))?;
        for entry in switches.iter().map_err(|e| self.redb(e))? {
            let (key, _) = entry.map_err(|e| self.redb(e))?;
            stored.failed_switches.push(SwitchId(key.value()));
        }
        let links = tx.open_table(FAILED_LINKS).map_err(|e| self.redb(e))?;
        for entry in links.iter().map_err(|e| self.redb(e))? {
            let (key, _) = entry.map_err(|e| self.redb(e))?;
            let (src_switch, src_port, dst_switch, dst_port) = key.value();
            stored.failed_links.push(Isl {
                src_switch: SwitchId(src_switch),
                src_port,
                dst_switch: SwitchId(dst_switch),
                dst_port,
            });
        }
        Ok(stored)
    }

    /// Writes the changes in one transaction; returns once it is committed (durably: redb's
    /// default durability syncs the file). Nothing is written when `changes` is empty.
    pub fn write(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(|e| self.redb(e))?;
        {
            let mut rules = tx.open_table(RULES).map_err(|e| self.redb(e))?;
            let mut meters = tx.open_table(METERS).map_err(|e| self.redb(e))?;
            let mut switches = tx.open_table(FAILED_SWITCHES).map_err(|e| self.redb(e))?;
            let mut links = tx.open_table(FAILED_LINKS).map_err(|e| self.redb(e))?;
            for change in changes {
                match change {
                    Change::Rule {
                        switch_id,
                        rule_match,
                        rule: Some(rule),
                    } => {
                        let json = serde_json::to_string(rule)
                            .expect("a flow segment always serializes to JSON");
                        rules
                            .insert(rule_key(*switch_id, rule_match), json.as_str())
                            .map_err(|e| self.redb(e))?;
                    }
                    Change::Rule {
                        switch_id,
                        rule_match,
                        rule: None,
                    } => {
                        rules
                            .remove(rule_key(*switch_id, rule_match))
                            .map_err(|e| self.redb(e))?;
                    }
                    Change::Meter {
                        switch_id,
                        meter_id,
                        rate_kbps: Some(rate),
                    } => {
                        meters
                            .insert((switch_id.0, *meter_id), *rate)
                            .map_err(|e| self.redb(e))?;
                    }
                    Change::Meter {
                        switch_id,
                        meter_id,
                        rate_kbps: None,
                    } => {
                        meters
                            .remove((switch_id.0, *meter_id))
                            .map_err(|e| self.redb(e))?;
                    }
                    Change::SwitchFailed { switch_id, failed } => {
                        if *failed {
                            switches.insert(switch_id.0, ()).map_err(|e| self.redb(e))?;
                        } else {
                            switches.remove(switch_id.0).map_err(|e| self.redb(e))?;
                        }
                    }
                    Change::LinkFailed { isl, failed } => {
                        if *failed {
                            links.insert(isl_key(isl), ()).map_err(|e| self.redb(e))?;
                        } else {
                            links.remove(isl_key(isl)).map_err(|e| self.redb(e))?;
                        }
                    }
                }
            }
        }
        tx.commit().map_err(|e| self.redb(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::segments::SegmentKind;

    #[test]
    fn rules_kept_by_cookie_by_an_earlier_version_are_found_by_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SWITCH_STORE_FILE);
        let rule = FlowSegment {
            switch_id: SwitchId(1),
            kind: SegmentKind::Ingress,
            cookie: 7,
            in_port: 10,
            in_vlan: 100,
            out_port: 1,
            out_vlan: 2,
            meter_id: None,
            bandwidth: 0,
        };
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut old = tx.open_table(RULES_BY_COOKIE).unwrap();
                let json = serde_json::to_string(&rule).unwrap();
                old.insert((1, 7), json.as_str()).unwrap();
            }
            tx.commit().unwrap();
        }
        let store = SwitchStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap().rules, vec![rule.clone()]);
        store
            .write(&[Change::Rule {
                switch_id: SwitchId(1),
                rule_match: rule.rule_match(),
                rule: None,
            }])
            .unwrap();
        drop(store);
        let reopened = SwitchStore::open(&path).unwrap();
        assert!(
            reopened.load().unwrap().rules.is_empty(),
            "moved once, not again"
        );
    }
}
