//! Applying a validated profile: recover, plan, build the change, execute it.
//!
//! The caller holds the lock for the whole call, so nothing can slip in between reading the
//! kernel and writing it. Whether the sysctl.d file is written is the caller's choice
//! ([`Persist`]): the safe path (`--watch`, `--confirm-within`) applies without it and persists
//! only once the change is confirmed.

use std::path::PathBuf;

use crate::change::context::Context;
use crate::change::coupled;
use crate::change::history;
use crate::change::persist;
use crate::change::plan::{Plan, Status};
use crate::change::record::{Change, PersistChange, ProfileRef, Record, RecordKind};
use crate::change::saved::SavedPlan;
use crate::change::store::StoreLock;
use crate::change::transaction::{self, Committed};
use crate::error::{Error, KernelFault, Result};
use crate::profile::Profile;

/// What `apply` did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
#[allow(clippy::large_enum_variant)] // made once per command
pub enum Outcome {
    /// Kernel and persisted file already match the profile; nothing recorded.
    InSync,
    /// `--dry-run`: the record that would have been made.
    DryRun {
        /// The would-be record.
        record: Record,
    },
    /// Changes made and recorded.
    Applied {
        /// Record id.
        id: String,
        /// History position.
        seq: u64,
        /// The record.
        record: Record,
    },
}

/// Whether an apply writes the persisted sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// Replace this file with the profile's keys.
    To(PathBuf),
    /// Leave it alone (persisting is off, or the change awaits confirmation).
    No,
}

impl Persist {
    /// The context's persisted file, when persisting is on.
    pub fn from_context(ctx: &Context) -> Self {
        match &ctx.persist_file {
            Some(path) => Self::To(path.clone()),
            None => Self::No,
        }
    }
}

/// How an apply is carried out.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether the persisted file is written.
    pub persist: Persist,
    /// Keep keys sysprof set earlier that the profile no longer names (and persist them),
    /// instead of releasing them to their values from before.
    pub keep_released: bool,
    /// Allow writes that cannot be undone until reboot.
    pub allow_irreversible: bool,
    /// A saved plan the change must equal exactly (`apply PLAN.json`).
    pub plan: Option<SavedPlan>,
}

/// The plan for `profile` against the kernel and what sysprof holds now.
pub fn plan(ctx: &Context, profile: &Profile, keep_released: bool) -> Result<Plan> {
    let held = history::entries(ctx)?.managed();
    let mut plan = Plan::build(profile, &ctx.tree, &held, keep_released);
    plan.mark(&ctx.schema);
    Ok(plan)
}

/// Refuses a plan with a write that cannot be undone until reboot, unless allowed.
pub fn refuse_irreversible(plan: &Plan, allowed: bool) -> Result<()> {
    let once: Vec<String> = plan
        .irreversible()
        .map(|c| format!("{} = {}", c.key, c.desired))
        .collect();
    if once.is_empty() || allowed {
        return Ok(());
    }
    Err(Error::Input {
        message: format!(
            "{} cannot be undone until reboot: `sysprof rollback` could not restore it",
            once.join(", ")
        ),
        help: Some("pass --allow-irreversible if that is what you want (see `sysprof diff` and `sysprof explain KEY`)".into()),
    })
}

/// What applying would do, computed without the lock and without writing anything (not even
/// the state dir or a recovery): `--dry-run`. An unfinished change is left for a real command.
pub fn preview(ctx: &Context, profile: &Profile, options: &Options) -> Result<(Plan, Outcome)> {
    let (plan, change) = planned_change(ctx, profile, options)?;
    if change.is_empty() {
        return Ok((plan, Outcome::InSync));
    }
    let record = Record::new(change, ctx.stamp()?);
    Ok((plan, Outcome::DryRun { record }))
}

/// Applies a validated profile under `lock`: recover, plan, record, execute.
pub fn apply(
    ctx: &Context,
    lock: &StoreLock,
    profile: &Profile,
    options: &Options,
) -> Result<(Plan, Outcome)> {
    transaction::recover(ctx, lock)?;
    let (plan, change) = planned_change(ctx, profile, options)?;
    if change.is_empty() {
        return Ok((plan, Outcome::InSync));
    }
    let Committed { id, seq, record } = transaction::execute(ctx, lock, change)?;
    Ok((plan, Outcome::Applied { id, seq, record }))
}

/// The plan and the change it calls for, refused (before anything is written) when a key
/// blocks it, when it would write irreversibly without leave, or when it is not the saved plan
/// it must equal.
fn planned_change(ctx: &Context, profile: &Profile, options: &Options) -> Result<(Plan, Change)> {
    let plan = plan(ctx, profile, options.keep_released)?;
    refuse_blockers(ctx, &plan)?;
    refuse_irreversible(&plan, options.allow_irreversible)?;
    let change = change(ctx, profile, &plan, &options.persist)?;
    if let Some(saved) = &options.plan {
        saved.check(ctx, &change)?;
    }
    Ok((plan, change))
}

/// A key that is missing (and not optional) or unreadable stops the apply before anything is
/// written, with the kernel's own reason.
fn refuse_blockers(ctx: &Context, plan: &Plan) -> Result<()> {
    let Some(blocker) = plan.blockers().next() else {
        return Ok(());
    };
    if blocker.status == Status::Unreadable {
        // Report the real read error (e.g. EISDIR), not a generic permission problem.
        ctx.tree.read(&blocker.key)?;
    }
    let fault = match blocker.status {
        Status::Missing => KernelFault::NotFound,
        _ => KernelFault::PermissionDenied,
    };
    Err(Error::Kernel {
        op: "read",
        key: blocker.key.to_string(),
        fault,
        value: None,
    })
}

/// The change a plan calls for: its pending keys, and the persisted file when it differs.
pub fn change(ctx: &Context, profile: &Profile, plan: &Plan, persist: &Persist) -> Result<Change> {
    let persist = match persist {
        Persist::To(path) => {
            let before = persist::read(path, ctx.store.euid())?;
            let after = Some(persist::render(plan, &profile.path));
            (before != after).then(|| PersistChange {
                path: path.display().to_string(),
                before,
                after,
            })
        }
        Persist::No => None,
    };
    let mut keys = plan.key_changes();
    coupled::complete(&ctx.tree, &mut keys)?;
    Ok(Change {
        kind: RecordKind::Apply,
        profile: Some(profile_ref(profile)),
        restores: None,
        keys,
        persist,
    })
}

/// How records name a profile.
pub fn profile_ref(profile: &Profile) -> ProfileRef {
    ProfileRef {
        name: profile.name.clone(),
        path: profile.path.display().to_string(),
        sha256: profile.fingerprint.clone(),
    }
}
