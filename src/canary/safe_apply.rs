//! The staged, watched and confirmed apply: policies around one transaction.
//!
//! [`apply`] is what `sysprof apply` does once the profile is valid. A host outside the
//! requested stage stops before anything is read (`NotInStage`). Without a watch or a confirm
//! deadline it is a plain journaled apply. With them the change is made through
//! `confirm::start` (not persisted, pending deadline, detached watcher), the health gates are
//! watched for the window, and the change is then persisted (`confirm::confirm`), handed over to
//! a person (`--confirm-within` after `--watch`), or rolled back (`confirm::enforce`). This module
//! decides; the command renders what it decided.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::canary::cohort;
use crate::canary::confirm::{self, Confirmed, Enforced, Mode, Pending, Reason, Request, Started};
use crate::canary::health::{self, Progress, Sources, Verdict};
use crate::canary::tripped;
use crate::canary::watcher::Owner;
use crate::change::apply::{self, Outcome, Persist};
use crate::change::context::Context;
use crate::change::plan::Plan;
use crate::change::rollback::RolledBack;
use crate::change::saved::SavedPlan;
use crate::change::transaction::Committed;
use crate::env::Launcher;
use crate::error::{Error, Location, Result};
use crate::profile::Profile;
use crate::profile::health::Gate;
use crate::profile::rollout::Stage;

/// How the detached deadline watcher is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherKind {
    /// systemd-run where systemd runs, else fork.
    Auto,
    /// A transient systemd unit.
    SystemdRun,
    /// A re-exec of sysprof in its own session.
    Fork,
}

/// What the operator asked for beyond a plain apply.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Only apply when this host is in the named rollout stage.
    pub stage: Option<String>,
    /// The id cohorts are computed from (default: the machine id).
    pub host_id: Option<String>,
    /// Watch the health gates this long before persisting.
    pub watch: Option<Duration>,
    /// Roll back unless confirmed within this long (after the watch, with one).
    pub confirm_within: Option<Duration>,
    /// How the deadline watcher is started.
    pub watcher: WatcherKind,
    /// Gates from the command line, added to the profile's.
    pub gates: Vec<Gate>,
    /// Sampling interval (default: the profile's, else 1 s).
    pub interval: Option<Duration>,
    /// The network counters' directory.
    pub proc_net: PathBuf,
    /// Show what would be done and change nothing.
    pub dry_run: bool,
    /// Keep (and persist) keys sysprof set earlier that the profile no longer names.
    pub keep_released: bool,
    /// Allow writes that cannot be undone until reboot.
    pub allow_irreversible: bool,
    /// A saved plan the change must equal exactly (`apply PLAN.json`).
    pub plan: Option<SavedPlan>,
    /// Apply a profile version whose watch tripped here before (refused by default).
    pub retry_tripped: bool,
    /// The arguments that rebuild this context in the watcher (global flags).
    pub watcher_args: Vec<OsString>,
    /// Whether the watcher may run outside this process's network namespace (systemd-run);
    /// false in an anonymous namespace, where only a forked watcher finds it again.
    pub watcher_can_leave: bool,
}

/// A host's place in a stage.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The stage.
    pub stage: Stage,
    /// The id the cohort was computed from.
    pub host_id: String,
    /// The host's cohort in [0, 100).
    pub cohort: f64,
    /// Whether the cohort falls inside the stage.
    pub inside: bool,
}

/// A watched window: what the gates said and how long it was.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The verdict.
    pub verdict: Verdict,
    /// The window.
    pub window: Duration,
    /// Gates watched.
    pub gates: usize,
}

/// What a watched apply reports while it runs.
pub enum Event<'a> {
    /// The change is applied (not persisted) and the watch begins.
    Watching {
        /// The unpersisted change.
        committed: &'a Committed,
        /// Gates watched.
        gates: usize,
        /// The window.
        window: Duration,
        /// Whether the window comes from the stage (no `--watch` given).
        from_stage: bool,
    },
    /// One sample was judged.
    Sample(&'a Progress<'a>),
}

/// What [`apply`] did.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made once per command
pub enum Applied {
    /// This host is not in the stage: nothing was changed.
    NotInStage,
    /// Asked to watch or confirm, but the kernel already matched: nothing pending (the file was
    /// persisted if it differed).
    Synced {
        /// What the plain apply did.
        outcome: Outcome,
    },
    /// A plain apply (no watch, no deadline).
    Plain {
        /// The plan.
        plan: Plan,
        /// What it did.
        outcome: Outcome,
    },
    /// Applied without persisting; `sysprof confirm` must run before the deadline.
    Awaiting {
        /// The unpersisted change.
        committed: Committed,
        /// The pending record.
        pending: Pending,
    },
    /// A gate tripped during the watch; the change was rolled back.
    Tripped {
        /// The unpersisted change.
        committed: Committed,
        /// The watch.
        watched: Watched,
        /// The rollback (None: already undone by someone else).
        rollback: Option<RolledBack>,
    },
    /// Healthy for the whole window and persisted.
    Kept {
        /// The unpersisted change.
        committed: Committed,
        /// The watch.
        watched: Watched,
        /// The confirmation.
        confirmed: Confirmed,
    },
    /// Healthy for the whole window; now a person must confirm (`--confirm-within`).
    Handed {
        /// The unpersisted change.
        committed: Committed,
        /// The watch.
        watched: Watched,
        /// The pending record with its new deadline.
        pending: Pending,
    },
}

/// Applies a validated profile under `policy`; `observe` hears when a watch starts and sees
/// every sample it judges.
pub fn apply(
    ctx: &Context,
    profile: &Profile,
    policy: &Policy,
    observe: &mut dyn FnMut(Event),
) -> Result<(Option<Placed>, Applied)> {
    let placed = match &policy.stage {
        Some(name) => Some(place(ctx, profile, name, policy.host_id.as_deref())?),
        None => None,
    };
    if placed.as_ref().is_some_and(|p| !p.inside) {
        return Ok((placed, Applied::NotInStage));
    }
    if !policy.dry_run {
        refuse_if_pending(ctx)?;
        if !policy.retry_tripped {
            tripped::refuse(ctx, profile)?;
        }
    }
    let watch = policy.watch.or(placed.as_ref().and_then(|p| p.stage.watch));
    let applied = match (watch, policy.confirm_within) {
        _ if policy.dry_run => plain(ctx, profile, policy, true)?,
        (None, None) => plain(ctx, profile, policy, false)?,
        (watch, _) => {
            let from_stage = policy.watch.is_none() && watch.is_some();
            guarded(ctx, profile, policy, (watch, from_stage), observe)?
        }
    };
    Ok((placed, applied))
}

/// A plain journaled apply, persisted when persisting is on; a dry run takes no lock and
/// writes nothing.
fn plain(ctx: &Context, profile: &Profile, policy: &Policy, dry_run: bool) -> Result<Applied> {
    let options = options(ctx, policy);
    let (plan, outcome) = match dry_run {
        true => apply::preview(ctx, profile, &options)?,
        false => {
            let lock = ctx.store.lock(ctx.lock_timeout)?;
            apply::apply(ctx, &lock, profile, &options)?
        }
    };
    Ok(Applied::Plain { plan, outcome })
}

/// The apply options for `policy`, persisting when the context does.
fn options(ctx: &Context, policy: &Policy) -> apply::Options {
    apply::Options {
        persist: Persist::from_context(ctx),
        keep_released: policy.keep_released,
        allow_irreversible: policy.allow_irreversible,
        plan: policy.plan.clone(),
    }
}

/// The safe path: pending change, detached watcher, optional watch, then keep or revert.
fn guarded(
    ctx: &Context,
    profile: &Profile,
    policy: &Policy,
    (watch, from_stage): (Option<Duration>, bool),
    observe: &mut dyn FnMut(Event),
) -> Result<Applied> {
    let spec = profile.health.clone().with_flags(&policy.gates);
    if watch.is_some() && spec.gates.is_empty() {
        return Err(no_gates(profile, "--watch"));
    }
    let (mode, within) = match watch {
        // The watcher gives the watching process the window and as long again (at least
        // 30 s) to persist before it reverts on its own.
        Some(w) => (Mode::Watch, w + w.max(Duration::from_secs(30))),
        None => (Mode::Confirm, policy.confirm_within.unwrap_or_default()),
    };
    let launcher = match policy.watcher_can_leave {
        true => launcher(ctx, policy.watcher),
        false => Launcher::Fork,
    };
    let req = Request {
        mode,
        within,
        owner: (mode == Mode::Watch)
            .then(|| Owner::current(ctx.env))
            .flatten(),
        boot_id: boot_id(&ctx.tree),
        watcher: launcher.describe(),
        keep_released: policy.keep_released,
        allow_irreversible: policy.allow_irreversible,
        plan: policy.plan.clone(),
    };
    let exe = ctx.env.exe()?;
    let log = ctx.store.dir().join(confirm::WATCHER_LOG);
    let mut launch = |p: &Pending| {
        let mut args = policy.watcher_args.clone();
        args.extend([
            "__watch-deadline".into(),
            "--token".into(),
            p.token.clone().into(),
        ]);
        let how = match &launcher {
            Launcher::SystemdRun(_) => Launcher::SystemdRun(format!("sysprof-watch-{}", p.token)),
            Launcher::Fork => Launcher::Fork,
        };
        ctx.env.spawn_detached(&how, &exe, &args, &log)
    };
    let (_, started) = confirm::start(ctx, profile, req, &mut launch)?;
    let Started::Applied {
        id,
        seq,
        record,
        pending,
    } = started
    else {
        // Nothing to watch or confirm; persist the file if it differs.
        let lock = ctx.store.lock(ctx.lock_timeout)?;
        let (_, outcome) = apply::apply(ctx, &lock, profile, &options(ctx, policy))?;
        return Ok(Applied::Synced { outcome });
    };
    let committed = Committed { id, seq, record };
    let Some(window) = watch else {
        return Ok(Applied::Awaiting { committed, pending });
    };
    let interval = policy
        .interval
        .or(spec.interval)
        .unwrap_or(health::DEFAULT_INTERVAL);
    let src = Sources {
        proc_net: &policy.proc_net,
        tree: &ctx.tree,
        env: ctx.env,
    };
    observe(Event::Watching {
        committed: &committed,
        gates: spec.gates.len(),
        window,
        from_stage,
    });
    let verdict = health::watch(&src, &spec.gates, window, interval, &mut |p| {
        observe(Event::Sample(p))
    });
    let watched = Watched {
        verdict,
        window,
        gates: spec.gates.len(),
    };
    conclude(ctx, profile, policy, committed, watched, &pending)
}

/// After the window: roll back when a gate tripped; else persist or hand over to a person.
fn conclude(
    ctx: &Context,
    profile: &Profile,
    policy: &Policy,
    committed: Committed,
    watched: Watched,
    pending: &Pending,
) -> Result<Applied> {
    let boot = boot_id(&ctx.tree);
    if let Verdict::Tripped { .. } = watched.verdict {
        let enforced = confirm::enforce(
            ctx,
            Some(&pending.token),
            Some(Reason::GateTripped),
            boot.as_deref(),
        )?;
        let rollback = match enforced {
            Enforced::Reverted { rollback, .. } => rollback,
            _ => None,
        };
        let gates = watched
            .verdict
            .tripped()
            .iter()
            .map(|c| c.describe())
            .collect();
        tripped::record(ctx, profile, gates)?;
        return Ok(Applied::Tripped {
            committed,
            watched,
            rollback,
        });
    }
    if let Some(within) = policy.confirm_within {
        let pending = confirm::hand_over(ctx, &pending.token, within)?;
        return Ok(Applied::Handed {
            committed,
            watched,
            pending,
        });
    }
    let confirmed = confirm::confirm(ctx, boot.as_deref())?;
    Ok(Applied::Kept {
        committed,
        watched,
        confirmed,
    })
}

/// Where this host falls in the profile's stage `name`.
pub fn place(
    ctx: &Context,
    profile: &Profile,
    name: &str,
    host_id: Option<&str>,
) -> Result<Placed> {
    let spec = profile.rollout.as_ref().ok_or_else(|| Error::Profile {
        at: Location::start(profile.path.display().to_string()),
        message: format!("--stage {name}: the profile has no `rollout` section"),
        help: Some("add `rollout: {stages: [{name: canary, percent: 1}, …]}`".into()),
        snippet: None,
    })?;
    let stage = spec.stage(name)?.clone();
    let host_id = match host_id {
        Some(id) => id.to_owned(),
        None => ctx.env.machine_id()?,
    };
    let cohort = cohort::cohort(&profile.fingerprint, &host_id);
    Ok(Placed {
        inside: cohort::in_stage(cohort, &stage),
        stage,
        host_id,
        cohort,
    })
}

/// Another state dir whose change awaits confirmation on this very target: its pending file
/// names our target and its deadline is ahead (a namespace's inode can be reused once it is
/// gone, and a stale mark must not block anyone).
fn pending_elsewhere(ctx: &Context) -> Option<PathBuf> {
    let other = ctx.store.target_pending_mark()?;
    let ours = std::path::absolute(ctx.store.dir()).ok()?;
    if other == ours {
        return None;
    }
    let bytes = std::fs::read(other.join(confirm::PENDING_FILE)).ok()?;
    let p: Pending = serde_json::from_slice(&bytes).ok()?;
    let ours = ctx.tree.identity().ok()?;
    (p.target.as_deref() == Some(ours.as_str()) && p.secs_left(ctx.env.now()) > 0).then_some(other)
}

/// Refuses a new change while one awaits confirmation (rolling that back first if it is due).
pub fn refuse_if_pending(ctx: &Context) -> Result<()> {
    if let Some(other) = pending_elsewhere(ctx) {
        return Err(Error::state(
            format!(
                "a change from state dir {} awaits confirmation on this kernel",
                other.display()
            ),
            Some(&format!(
                "confirm or roll it back first: `sysprof --state-dir {} confirm` (or `rollback`)",
                other.display()
            )),
        ));
    }
    let Some(p) = confirm::load(&ctx.store)? else {
        return Ok(());
    };
    let boot = boot_id(&ctx.tree);
    if confirm::due(&p, ctx.env, boot.as_deref()).is_some() {
        confirm::enforce(ctx, Some(&p.token), None, boot.as_deref())?;
        return Ok(());
    }
    Err(Error::state(
        format!(
            "a change awaits confirmation: {} ({}s left)",
            p.profile.name,
            p.secs_left(ctx.env.now())
        ),
        Some(
            "run `sysprof confirm` to keep it, or `sysprof rollback` to undo it, before applying again",
        ),
    ))
}

pub use crate::canary::confirm::boot_id;

fn launcher(ctx: &Context, kind: WatcherKind) -> Launcher {
    match kind {
        WatcherKind::SystemdRun => Launcher::SystemdRun(String::new()),
        WatcherKind::Auto if ctx.env.has_systemd_run() => Launcher::SystemdRun(String::new()),
        _ => Launcher::Fork,
    }
}

/// The error for watching a profile that has no gates (`what` names the command or flag).
pub fn no_gates(profile: &Profile, what: &str) -> Error {
    Error::Profile {
        at: Location::start(profile.path.display().to_string()),
        message: format!(
            "{what}: profile {} has no health gates to watch",
            profile.name
        ),
        help: Some("add a `health: {gates: …}` section or pass --gate COUNTER:LIMIT=N".into()),
        snippet: None,
    }
}
