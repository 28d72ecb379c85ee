//! The simulated switches' durable memory: one redb file with every switch's rules and meters,
//! and which switches and links were failed through `/sim/`. Real switches keep their rules when
//! the controller restarts; with this store the simulated ones do too.
//!
//! The fabric keeps its in-memory maps and writes each change through, in one write
//! transaction, before it answers.

use std::path::{Path, PathBuf};

use hubspoke_fsm::segments::FlowSegment;
use hubspoke_fsm::{Isl, SwitchId};
use redb::{Database, ReadableTable, TableDefinition};

/// The store's file name inside a data directory.
pub const SWITCH_STORE_FILE: &str = "switches.redb";

/// (switch id, cookie) → the rule as JSON.
const RULES: TableDefinition<(u64, u64), &str> = TableDefinition::new("rules");
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
    #[error("switch store {}: rule {cookie:#x} of switch {switch_id} is unreadable: {source}", path.display())]
    BadRule {
        path: PathBuf,
        switch_id: SwitchId,
        cookie: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// One change to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The rule now on the switch under this cookie, or none.
    Rule {
        switch_id: SwitchId,
        cookie: u64,
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

    fn redb(&self, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Redb {
            path: self.path.clone(),
            source: Box::new(source.into()),
        }
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.redb(e))?;
        {
            tx.open_table(RULES).map_err(|e| self.redb(e))?;
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
            let (switch, cookie) = key.value();
            let rule: FlowSegment =
                serde_json::from_str(value.value()).map_err(|source| StoreError::BadRule {
                    path: self.path.clone(),
                    switch_id: SwitchId(switch),
                    cookie,
                    source,
                })?;
            stored.rules.push(rule);
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
                        cookie,
                        rule: Some(rule),
                    } => {
                        let json = serde_json::to_string(rule)
                            .expect("a flow segment always serializes to JSON");
                        rules
                            .insert((switch_id.0, *cookie), json.as_str())
                            .map_err(|e| self.redb(e))?;
                    }
                    Change::Rule {
                        switch_id,
                        cookie,
                        rule: None,
                    } => {
                        rules
                            .remove((switch_id.0, *cookie))
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
