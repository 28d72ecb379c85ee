//! Diversity groups (OpenKilda's `diverse_flow_id`): flows whose paths should share no ISL,
//! and no switch but their endpoints. A flow naming another joins that flow's group, or both
//! form a new one; a member's deletion leaves the others a group. The allocator keeps the
//! groups, writes every change to the flow log (`FlowEvent::DiverseGroup`) and reads them back
//! after a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hubspoke_fsm::FlowId;

pub type GroupId = String;

#[derive(Debug, Default)]
pub struct DiversityGroups {
    group_of: HashMap<FlowId, GroupId>,
    members: BTreeMap<GroupId, BTreeSet<FlowId>>,
}

/// One member joining or leaving a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipChange {
    pub flow_id: FlowId,
    pub group: GroupId,
    pub joined: bool,
}

impl DiversityGroups {
    pub fn group_of(&self, flow_id: &str) -> Option<&GroupId> {
        self.group_of.get(flow_id)
    }

    /// The members of `group`, in id order.
    pub fn members(&self, group: &str) -> impl Iterator<Item = &FlowId> {
        self.members.get(group).into_iter().flatten()
    }

    /// Puts `flow_id` in `group` (none: in no group), out of the one it was in.
    pub fn set(&mut self, flow_id: &str, group: Option<GroupId>) -> Vec<MembershipChange> {
        let mut changes = Vec::new();
        if self.group_of.get(flow_id) == group.as_ref() {
            return changes;
        }
        if let Some(old) = self.group_of.remove(flow_id) {
            if let Some(members) = self.members.get_mut(&old) {
                members.remove(flow_id);
                if members.is_empty() {
                    self.members.remove(&old);
                }
            }
            changes.push(MembershipChange {
                flow_id: flow_id.to_string(),
                group: old,
                joined: false,
            });
        }
        if let Some(new) = group {
            self.members
                .entry(new.clone())
                .or_default()
                .insert(flow_id.to_string());
            self.group_of.insert(flow_id.to_string(), new.clone());
            changes.push(MembershipChange {
                flow_id: flow_id.to_string(),
                group: new,
                joined: true,
            });
        }
        changes
    }

    /// `partner`'s group, or the name of a new one for it: its id, made unique, so a group a
    /// deleted flow of that id formed is not joined by a new flow of the same id.
    pub fn group_for(&self, partner: &str) -> GroupId {
        if let Some(group) = self.group_of.get(partner) {
            return group.clone();
        }
        std::iter::once(partner.to_string())
            .chain((2..).map(|n| format!("{partner}#{n}")))
            .find(|name| !self.members.contains_key(name))
            .unwrap_or_else(|| partner.to_string())
    }
}

#[cfg(test)]
mod tests;
