//! Injected faults: latency, error and drop rates, decided by a dice roll derived from the
//! command itself so that a replay of the same commands meets the same faults.

use std::collections::BTreeMap;

use hubspoke_fsm::{SbCommand, SbErrorCode, SwitchId};
use serde::{Deserialize, Serialize};

/// What a switch does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    pub latency_ms: u64,
    /// Probability in [0, 1] of answering `error_code` without acting.
    pub error_rate: f64,
    /// Probability in [0, 1] of losing the command: no action, no answer.
    pub drop_rate: f64,
    pub error_code: SbErrorCode,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            error_rate: 0.0,
            drop_rate: 0.0,
            error_code: SbErrorCode::SwitchUnavailable,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultsError {
    #[error("{name} must be between 0 and 1, got {value}")]
    RateOutOfRange { name: &'static str, value: f64 },
}

impl Faults {
    pub fn validate(&self) -> Result<(), FaultsError> {
        for (name, value) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
        ] {
            // NaN fails this check too.
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultsError::RateOutOfRange { name, value });
            }
        }
        Ok(())
    }
}

/// The fate of one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultDecision {
    /// Act on the command after `latency_ms` and answer.
    Deliver { latency_ms: u64 },
    /// Answer `code` after `latency_ms`, without acting.
    Fail { latency_ms: u64, code: SbErrorCode },
    /// Lose the command.
    Drop,
}

/// The global faults and the per-switch overrides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    pub default: Faults,
    pub per_switch: BTreeMap<SwitchId, Faults>,
}

// Separate salts make the drop and error rolls independent of each other.
const DROP_SALT: u8 = 1;
const ERROR_SALT: u8 = 2;

impl FaultPlan {
    pub fn for_switch(&self, switch_id: SwitchId) -> Faults {
        self.per_switch
            .get(&switch_id)
            .copied()
            .unwrap_or(self.default)
    }

    pub fn decide(&self, command: &SbCommand) -> FaultDecision {
        let faults = self.for_switch(command.segment.switch_id);
        if roll(&command.command_id, command.attempt, DROP_SALT) < faults.drop_rate {
            return FaultDecision::Drop;
        }
        if roll(&command.command_id, command.attempt, ERROR_SALT) < faults.error_rate {
            return FaultDecision::Fail {
                latency_ms: faults.latency_ms,
                code: faults.error_code,
            };
        }
        FaultDecision::Deliver {
            latency_ms: faults.latency_ms,
        }
    }
}

/// A number in [0, 1) that depends only on its inputs: FNV-1a, then a splitmix64 finalizer
/// so that nearby ids (`f:1`, `f:2`) spread over the whole range.
pub fn roll(command_id: &str, attempt: u32, salt: u8) -> f64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    for byte in command_id
        .bytes()
        .chain(attempt.to_le_bytes())
        .chain([salt])
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    // The top 53 bits fill an f64 mantissa exactly.
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::segments::{FlowSegment, SegmentKind};

    fn command(id: &str, attempt: u32) -> SbCommand {
        SbCommand {
            command_id: id.into(),
            attempt,
            action: hubspoke_fsm::SbAction::Install,
            segment: FlowSegment {
                switch_id: SwitchId(1),
                kind: SegmentKind::OneSwitch,
                cookie: 1,
                in_port: 1,
                in_vlan: 0,
                out_port: 2,
                out_vlan: 0,
                meter_id: None,
                bandwidth: 0,
            },
            ping_exit: None,
        }
    }

    #[test]
    fn the_same_command_rolls_the_same() {
        assert_eq!(roll("flow-1:3", 2, 1), roll("flow-1:3", 2, 1));
        assert_ne!(roll("flow-1:3", 2, 1), roll("flow-1:3", 3, 1));
        assert_ne!(roll("flow-1:3", 2, 1), roll("flow-1:3", 2, 2));
        let plan = FaultPlan {
            default: Faults {
                error_rate: 0.5,
                drop_rate: 0.2,
                ..Faults::default()
            },
            ..FaultPlan::default()
        };
        for n in 0..100 {
            let c = command(&format!("f:{n}"), 1);
            assert_eq!(plan.decide(&c), plan.decide(&c.clone()));
        }
    }

    #[test]
    fn rolls_are_spread_evenly() {
        let n = 10_000;
        let rolls: Vec<f64> = (0..n).map(|i| roll(&format!("flow-{i}:1"), 1, 0)).collect();
        assert!(rolls.iter().all(|r| (0.0..1.0).contains(r)));
        let below_quarter = rolls.iter().filter(|&&r| r < 0.25).count();
        assert!((2300..2700).contains(&below_quarter), "{below_quarter}");
    }

    #[test]
    fn rates_decide_the_fate() {
        let mut plan = FaultPlan::default();
        assert_eq!(
            plan.decide(&command("a", 1)),
            FaultDecision::Deliver { latency_ms: 0 }
        );
        plan.default = Faults {
            latency_ms: 7,
            error_rate: 1.0,
            error_code: SbErrorCode::TableFull,
            ..Faults::default()
        };
        assert_eq!(
            plan.decide(&command("a", 1)),
            FaultDecision::Fail {
                latency_ms: 7,
                code: SbErrorCode::TableFull
            }
        );
        plan.per_switch.insert(
            SwitchId(1),
            Faults {
                drop_rate: 1.0,
                ..Faults::default()
            },
        );
        assert_eq!(plan.decide(&command("a", 1)), FaultDecision::Drop);
        let dropped = (0..1000).filter(|n| {
            let plan = FaultPlan {
                default: Faults {
                    drop_rate: 0.3,
                    ..Faults::default()
                },
                ..FaultPlan::default()
            };
            plan.decide(&command(&format!("c{n}"), 1)) == FaultDecision::Drop
        });
        assert!((230..370).contains(&dropped.count()));
    }

    #[test]
    fn rates_must_be_probabilities() {
        assert!(Faults::default().validate().is_ok());
        assert!(Faults {
            error_rate: 1.5,
            ..Faults::default()
        }
        .validate()
        .is_err());
        assert!(Faults {
            drop_rate: -0.1,
            ..Faults::default()
        }
        .validate()
        .is_err());
        assert!(Faults {
            drop_rate: f64::NAN,
            ..Faults::default()
        }
        .validate()
        .is_err());
    }
}
