//! Plans: what applying a profile would change, as plain data.
//!
//! A [`Plan`] compares each desired value with the kernel's current one and orders the writes so
//! the kernel's own cross-key checks pass (ip_local_port_range vs ip_unprivileged_port_start).
//! An apply is declarative: the profile is the whole managed set, so a key sysprof set earlier
//! that this profile no longer names is released, back to the value it had before sysprof
//! first set it (or kept at its value and persisted, when asked). `diff` renders the plan,
//! `apply` executes it, JSON output serialises it. Building a plan only reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::change::history::Managed;
use crate::change::record::KeyChange;
use crate::error::{Error, KernelFault};
use crate::kernel::SysctlTree;
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;
use crate::profile::{Location, Profile};
use crate::schema::Schema;

/// The state of one key relative to the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Already at the desired value.
    Unchanged,
    /// Will be written.
    Changed,
    /// The key does not exist here (and is not optional).
    Missing,
    /// Optional key that does not exist here: skipped.
    Skipped,
    /// The key exists but cannot be read.
    Unreadable,
    /// Set by sysprof earlier, not named by this profile: restored to its value from before.
    Released,
    /// Set by sysprof earlier, not named by this profile, kept at its value (`--keep-released`)
    /// and persisted.
    Kept,
}

/// One key of a plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyPlan {
    /// The key.
    pub key: SysctlKey,
    /// The kernel's value now, if readable.
    pub current: Option<Value>,
    /// The profile's value.
    pub desired: Value,
    /// What applying will do.
    pub status: Status,
    /// Why it cannot be read, for `Unreadable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the profile sets it (`None` for released and kept keys).
    pub at: Option<Location>,
    /// Writing it cannot be undone until reboot: why (the catalogue's one-way note).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_way: Option<String>,
    /// Writing it performs an action rather than setting a state: rollback does not undo it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub trigger: bool,
    /// The profile's pattern key it comes from (`net.ipv4.conf.*.rp_filter`), if any: the
    /// persisted file carries the pattern, so boot sets the interfaces present then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// The plan row of a held key the profile no longer names; `None` when it cannot be read (it
/// is gone with its module: nothing to release).
fn released(tree: &SysctlTree, key: &SysctlKey, held: &Managed, keep: bool) -> Option<KeyPlan> {
    let current = tree.read(key).ok()?;
    let (status, desired) = match keep {
        true => (Status::Kept, current.clone()),
        false => (Status::Released, held.original.clone()),
    };
    Some(KeyPlan {
        key: key.clone(),
        current: Some(current),
        desired,
        status,
        error: None,
        at: None,
        one_way: None,
        trigger: false,
        pattern: None,
    })
}

/// Every key of a profile, in write order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// Profile name.
    pub profile: String,
    /// Profile fingerprint.
    pub fingerprint: String,
    /// The keys.
    pub changes: Vec<KeyPlan>,
}

impl Plan {
    /// Reads the current value of every key the profile sets, and of every key sysprof holds
    /// (`held`, see `History::managed`) that it does not: those are released, or kept.
    pub fn build(
        profile: &Profile,
        tree: &SysctlTree,
        held: &BTreeMap<SysctlKey, Managed>,
        keep_released: bool,
    ) -> Self {
        let changes = profile.settings.values().map(|setting| {
            let (current, status, error) = match tree.read(&setting.key) {
                Ok(v) if v.same_as(&setting.value) => (Some(v), Status::Unchanged, None),
                Ok(v) => (Some(v), Status::Changed, None),
                Err(Error::Kernel {
                    fault: KernelFault::NotFound,
                    ..
                }) if setting.optional => (None, Status::Skipped, None),
                Err(Error::Kernel {
                    fault: KernelFault::NotFound,
                    ..
                }) => (None, Status::Missing, None),
                Err(e) => (None, Status::Unreadable, Some(e.to_string())),
            };
            KeyPlan {
                key: setting.key.clone(),
                current,
                desired: setting.value.clone(),
                status,
                error,
                at: Some(setting.at.clone()),
                one_way: None,
                trigger: false,
                pattern: setting.pattern.clone(),
            }
        });
        let mut changes: Vec<KeyPlan> = changes.collect();
        let released = held
            .iter()
            .filter(|(key, _)| !profile.settings.contains_key(*key))
            .filter_map(|(key, h)| released(tree, key, h, keep_released));
        changes.extend(released);
        let mut plan = Plan {
            profile: profile.name.clone(),
            fingerprint: profile.fingerprint.clone(),
            changes,
        };
        plan.order_for_kernel_checks();
        plan
    }

    /// Keys that will be written (released keys included: that records their release).
    pub fn pending(&self) -> impl Iterator<Item = &KeyPlan> {
        self.changes
            .iter()
            .filter(|c| matches!(c.status, Status::Changed | Status::Released))
    }

    /// Marks the keys whose pending write cannot be undone until reboot, and the triggers, from
    /// the catalogue.
    pub fn mark(&mut self, schema: &Schema) {
        for change in &mut self.changes {
            let Some(spec) = schema.lookup(&change.key) else {
                continue;
            };
            change.trigger = spec.trigger;
            let pending = matches!(change.status, Status::Changed | Status::Released);
            let (Some(one_way), true) = (spec.one_way, pending) else {
                continue;
            };
            let from = change.current.as_ref().and_then(Value::as_int);
            if change
                .desired
                .as_int()
                .is_some_and(|to| one_way.irreversible(from, to))
            {
                change.one_way = Some(one_way.note.to_owned());
            }
        }
    }

    /// The pending writes that cannot be undone until reboot.
    pub fn irreversible(&self) -> impl Iterator<Item = &KeyPlan> {
        self.changes.iter().filter(|c| c.one_way.is_some())
    }

    /// What the persisted file lists: the profile's keys and the kept ones, not released ones.
    pub fn persisted(&self) -> impl Iterator<Item = &KeyPlan> {
        self.changes.iter().filter(|c| c.status != Status::Released)
    }

    /// Keys that block an apply (missing or unreadable).
    pub fn blockers(&self) -> impl Iterator<Item = &KeyPlan> {
        self.changes
            .iter()
            .filter(|c| matches!(c.status, Status::Missing | Status::Unreadable))
    }

    /// The key writes an apply makes: every pending key from its current to its desired value.
    pub fn key_changes(&self) -> Vec<KeyChange> {
        self.pending()
            .map(|c| KeyChange {
                key: c.key.clone(),
                before: c.current.clone().unwrap_or_default(),
                after: c.desired.clone(),
                released: c.status == Status::Released,
                implied: false,
            })
            .collect()
    }

    /// Whether the kernel already matches the profile.
    pub fn in_sync(&self) -> bool {
        self.pending().next().is_none() && self.blockers().next().is_none()
    }

    /// The kernel rejects `ip_local_port_range` below `ip_unprivileged_port_start` and vice
    /// versa, checking against the *current* value of the other key. Raising the unprivileged
    /// start must therefore wait until the range has moved up, and lowering the range must wait
    /// until the start has moved down: write the start first exactly when it goes down.
    fn order_for_kernel_checks(&mut self) {
        let position =
            |plan: &Plan, name: &str| plan.changes.iter().position(|c| c.key.to_string() == name);
        let (Some(range), Some(start)) = (
            position(self, "net.ipv4.ip_local_port_range"),
            position(self, "net.ipv4.ip_unprivileged_port_start"),
        ) else {
            return;
        };
        let start_change = &self.changes[start];
        let lowering = match (
            start_change.current.as_ref().and_then(Value::as_int),
            start_change.desired.as_int(),
        ) {
            (Some(now), Some(wanted)) => wanted < now,
            _ => false,
        };
        if lowering && start > range {
            let moved = self.changes.remove(start);
            self.changes.insert(range, moved);
        } else if !lowering && start < range {
            let moved = self.changes.remove(range);
            self.changes.insert(start, moved);
        }
    }

    /// The plan as two sysctl.conf texts (current and desired) for a unified diff.
    pub fn conf_texts(&self) -> (String, String) {
        let (mut before, mut after) = (String::new(), String::new());
        for change in &self.changes {
            match &change.current {
                Some(v) => writeln!(before, "{} = {v}", change.key),
                None => writeln!(before, "# {} (absent)", change.key),
            }
            .ok();
            writeln!(after, "{} = {}", change.key, change.desired).ok();
        }
        (before, after)
    }

    /// A unified diff of current vs desired, as sysctl.conf lines.
    pub fn unified_diff(&self) -> String {
        let (before, after) = self.conf_texts();
        similar::TextDiff::from_lines(&before, &after)
            .unified_diff()
            .context_radius(2)
            .header("kernel (now)", "profile")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tree_with(values: &[(&str, &str)]) -> (tempfile::TempDir, SysctlTree) {
        let dir = tempfile::tempdir().unwrap();
        for (key, value) in values {
            let path = dir.path().join(SysctlKey::parse(key).unwrap().rel_path());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{value}\n")).unwrap();
        }
        let tree = SysctlTree::open(dir.path()).unwrap();
        (dir, tree)
    }

    fn profile(dir: &Path, body: &str) -> Profile {
        let path = dir.join("p.yaml");
        std::fs::write(&path, body).unwrap();
        Profile::load(&path).unwrap()
    }

    #[test]
    fn statuses_follow_the_kernel() {
        let (dir, tree) = tree_with(&[
            ("net.ipv4.tcp_fin_timeout", "60"),
            ("net.ipv4.ip_local_port_range", "32768\t60999"),
        ]);
        let p = profile(
            dir.path(),
            "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 60\n  net.ipv4.ip_local_port_range: [1024, 65535]\n  net.ipv4.tcp_gone: 1\n  net.ipv4.tcp_maybe: {value: 1, optional: true}\n",
        );
        let plan = Plan::build(&p, &tree, &BTreeMap::new(), false);
        let status = |k: &str| {
            plan.changes
                .iter()
                .find(|c| c.key.to_string() == k)
                .unwrap()
                .status
        };
        assert_eq!(status("net.ipv4.tcp_fin_timeout"), Status::Unchanged);
        assert_eq!(status("net.ipv4.ip_local_port_range"), Status::Changed);
        assert_eq!(status("net.ipv4.tcp_gone"), Status::Missing);
        assert_eq!(status("net.ipv4.tcp_maybe"), Status::Skipped);
        assert!(!plan.in_sync());
        let diff = plan.unified_diff();
        assert!(
            diff.contains("-net.ipv4.ip_local_port_range = 32768 60999"),
            "{diff}"
        );
        assert!(
            diff.contains("+net.ipv4.ip_local_port_range = 1024 65535"),
            "{diff}"
        );
    }

    #[test]
    fn unprivileged_start_is_ordered_against_the_port_range() {
        let keys = |plan: &Plan| {
            plan.changes
                .iter()
                .map(|c| c.key.leaf().to_owned())
                .collect::<Vec<_>>()
        };
        let (dir, tree) = tree_with(&[
            ("net.ipv4.ip_local_port_range", "32768 60999"),
            ("net.ipv4.ip_unprivileged_port_start", "1024"),
        ]);
        let up = profile(
            dir.path(),
            "version: 1\nsysctls:\n  net.ipv4.ip_local_port_range: [40000, 60999]\n  net.ipv4.ip_unprivileged_port_start: 35000\n",
        );
        assert_eq!(
            keys(&Plan::build(&up, &tree, &BTreeMap::new(), false)),
            ["ip_local_port_range", "ip_unprivileged_port_start"]
        );
        let down = profile(
            dir.path(),
            "version: 1\nsysctls:\n  net.ipv4.ip_local_port_range: [600, 60999]\n  net.ipv4.ip_unprivileged_port_start: 500\n",
        );
        assert_eq!(
            keys(&Plan::build(&down, &tree, &BTreeMap::new(), false)),
            ["ip_unprivileged_port_start", "ip_local_port_range"]
        );
    }
}
