//! The one change value the engine executes, and the record it leaves behind.
//!
//! A [`Change`] is typed data: which keys go from which value to which, and how the persisted
//! sysctl.d file changes. `apply`, `rollback`, `confirm` and the watcher's revert all build one;
//! `transaction::execute` is the only code that carries one out. The [`Record`] stored for it is
//! written *from* the change, adding when, who, where and its place in the history; it is what
//! `history`, `show` and rollback read back. Keys are checked when a record is read, like keys
//! typed by hand.

use serde::{Deserialize, Serialize};

use crate::env::Identity;
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;

/// Record format written by this build.
pub const RECORD_FORMAT: u32 = 1;
/// Length of the short ids shown to users.
pub const SHORT_ID: usize = 12;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// `sysprof apply` (and the persisting step of `sysprof confirm`).
    Apply,
    /// `sysprof rollback`, and the automatic revert of an unconfirmed change.
    Rollback,
}

/// The profile a change applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRef {
    /// Its name.
    pub name: String,
    /// The path given on the command line.
    pub path: String,
    /// Its fingerprint (sha256 over its files).
    pub sha256: String,
}

/// One key's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// The key.
    pub key: SysctlKey,
    /// The kernel's value before.
    pub before: Value,
    /// The value written.
    pub after: Value,
    /// The key was released: the profile no longer names it, and `after` is the value it had
    /// before sysprof first set it (so the record alone says sysprof lets go of it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
    /// The kernel sets it as a side effect of another write of the same change (writing
    /// `vm.dirty_bytes` zeroes `vm.dirty_ratio`): recorded so a rollback restores it, never
    /// written itself (see `coupled`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implied: bool,
}

/// The persisted sysctl.d file before and after (None = absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistChange {
    /// The file.
    pub path: String,
    /// Its content before.
    pub before: Option<String>,
    /// Its content after.
    pub after: Option<String>,
}

/// What the engine executes: key writes in order, then the persisted file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Apply or rollback.
    pub kind: RecordKind,
    /// The profile applied (for a rollback: the profile of the entry it undoes).
    pub profile: Option<ProfileRef>,
    /// For rollbacks: the record whose prior state this restores. For the persisting apply
    /// that `sysprof confirm` writes: the unpersisted apply it confirms (and replaces).
    pub restores: Option<String>,
    /// Key changes in write order.
    pub keys: Vec<KeyChange>,
    /// The persisted file change, if any.
    pub persist: Option<PersistChange>,
}

impl Change {
    /// Whether executing it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.persist.as_ref().is_none_or(|p| p.before == p.after)
    }
}

/// When, who and where a change ran: what a record adds to its change.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// Position in the history the record is written for.
    pub seq: u64,
    /// UTC time, RFC 3339.
    pub time: String,
    /// User, host and kernel.
    pub identity: Identity,
    /// Network namespace, if `--netns` was used.
    pub netns: Option<String>,
}

/// A snapshot of one change: enough to undo it and to explain it. Stored as JSON named by the
/// sha256 of its bytes; the field order below is the stored order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Record format version.
    pub format: u32,
    /// Position in the history this record was written for.
    pub seq: u64,
    /// Apply or rollback.
    pub kind: RecordKind,
    /// UTC time, RFC 3339.
    pub time: String,
    /// Who ran it (uid and name).
    pub user: String,
    /// Host name.
    pub host: String,
    /// Kernel release.
    pub kernel: String,
    /// Network namespace, if `--netns` was used.
    pub netns: Option<String>,
    /// The profile applied (apply records).
    pub profile: Option<ProfileRef>,
    /// See [`Change::restores`].
    pub restores: Option<String>,
    /// Key changes in write order.
    pub changes: Vec<KeyChange>,
    /// The persisted file change, if any.
    pub persist: Option<PersistChange>,
}

impl Record {
    /// The record of `change`, stamped.
    pub fn new(change: Change, stamp: Stamp) -> Self {
        Self {
            format: RECORD_FORMAT,
            seq: stamp.seq,
            kind: change.kind,
            time: stamp.time,
            user: stamp.identity.user,
            host: stamp.identity.host,
            kernel: stamp.identity.kernel,
            netns: stamp.netns,
            profile: change.profile,
            restores: change.restores,
            changes: change.keys,
            persist: change.persist,
        }
    }

    /// The change this record carried out.
    pub fn change(&self) -> Change {
        Change {
            kind: self.kind,
            profile: self.profile.clone(),
            restores: self.restores.clone(),
            keys: self.changes.clone(),
            persist: self.persist.clone(),
        }
    }

    /// The canonical bytes that are hashed and stored.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("records serialise");
        bytes.push(b'\n');
        bytes
    }

    /// Whether the record changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.persist.as_ref().is_none_or(|p| p.before == p.after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_the_stored_field_order_and_reads_back_typed() {
        let key = |k: &str| SysctlKey::parse(k).unwrap();
        let change = Change {
            kind: RecordKind::Apply,
            profile: None,
            restores: None,
            keys: vec![KeyChange {
                key: key("net.ipv4.ip_local_port_range"),
                before: Value::from_text("32768\t60999"),
                after: Value::from_text("1024 65535"),
                released: false,
                implied: false,
            }],
            persist: None,
        };
        let stamp = Stamp {
            seq: 3,
            time: "2026-11-29T00:00:00Z".into(),
            identity: Identity {
                user: "0(root)".into(),
                host: "h".into(),
                kernel: "6.18".into(),
            },
            netns: None,
        };
        let record = Record::new(change.clone(), stamp);
        let text = String::from_utf8(record.canonical_bytes()).unwrap();
        let order: Vec<usize> = [
            "\"format\"",
            "\"seq\"",
            "\"kind\"",
            "\"time\"",
            "\"changes\"",
            "\"persist\"",
        ]
        .iter()
        .map(|f| text.find(f).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("\"before\": \"32768 60999\""), "{text}");
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back.change(), change);
        let planted = text.replace("net.ipv4.ip_local_port_range", "../../etc/passwd");
        assert!(serde_json::from_str::<Record>(&planted).is_err());
    }
}
