//! Confirm or revert: changes that undo themselves unless someone (or a healthy watch) confirms.
//!
//! `apply --confirm-within` and `apply --watch` do not persist. They leave `pending.json` in the
//! state dir, naming the applied record, a deadline and (for a watch) the applying process, and a
//! detached watcher process (see `watcher`: a re-exec of sysprof as `__watch-deadline` in its own
//! session, or a transient systemd unit) enforces it: at the deadline, when the watching process
//! dies, or after a reboot, it rolls the change back. `sysprof confirm` persists the change as
//! its own journaled record (same key changes, plus the sysctl.d file) and removes the pending
//! file. Because nothing reached `/etc/sysctl.d` before the confirmation, a reboot reverts too.
//!
//! Order matters for a process killed at any instant: the pending file is written and the
//! watcher started *before* the first kernel write, so whatever the apply got to, the watcher
//! finds it (by record id, or by the first apply of this profile after `after_seq`).
//! This module decides and acts; printing and reading argv are the commands' job.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::canary::watcher::Owner;
use crate::change::apply::{self, Outcome, Persist};
use crate::change::context::Context;
use crate::change::history;
use crate::change::persist;
use crate::change::plan::Plan;
use crate::change::record::{Change, PersistChange, ProfileRef, Record, RecordKind};
use crate::change::rollback::{self, RolledBack};
use crate::change::store::{self, Store, StoreLock};
use crate::change::transaction::{self, Committed};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::profile::Profile;

/// The pending change's file in the state dir (present only while a change awaits confirmation).
pub const PENDING_FILE: &str = "pending.json";
/// Where detached watchers write what they did.
pub const WATCHER_LOG: &str = "watcher.log";
/// Pending file format written by this build.
pub const PENDING_FORMAT: u32 = 1;

/// Who confirms a pending change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A person or pipeline runs `sysprof confirm` before the deadline.
    Confirm,
    /// The applying process confirms after a healthy watch; its death reverts at once.
    Watch,
}

/// The sysctl.d content to write when the change is confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistTarget {
    /// The persisted file.
    pub path: String,
    /// Its content once confirmed.
    pub after: String,
}

/// Why a pending change was rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Nobody confirmed before the deadline.
    Deadline,
    /// The watching `sysprof apply --watch` died before its window ended.
    OwnerDied,
    /// The host rebooted (the kernel already dropped the unpersisted values).
    Rebooted,
    /// A health gate tripped during the watch.
    GateTripped,
}

/// A change awaiting confirmation: the content of `pending.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// File format.
    pub format: u32,
    /// Identifies this pending change to its watcher.
    pub token: String,
    /// Who confirms.
    pub mode: Mode,
    /// The profile applied.
    pub profile: ProfileRef,
    /// The last history seq before the change (0: empty history).
    pub after_seq: u64,
    /// The applied record, once the apply finished.
    pub record: Option<String>,
    /// When the change started (RFC 3339).
    pub created: String,
    /// The deadline, milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// The applying process (watch mode).
    pub owner: Option<Owner>,
    /// The watcher's pid, once it started.
    pub watcher_pid: Option<u32>,
    /// How the watcher was started (`fork` or `systemd-run:UNIT`).
    pub watcher: String,
    /// `kernel.random.boot_id` when applied: a different one means the host rebooted.
    pub boot_id: Option<String>,
    /// The persisted file to write on confirmation (None: persisting is off).
    pub persist: Option<PersistTarget>,
    /// Set once a rollback started, so a confirmation cannot race it.
    pub reverting: Option<Reason>,
    /// What the change was made to (`SysctlTree::identity`: the tree and the network
    /// namespace): the watcher acts only where this matches.
    #[serde(default)]
    pub target: Option<String>,
}

impl Pending {
    /// Time until the deadline (zero when past).
    pub fn time_left(&self, now: SystemTime) -> Duration {
        Duration::from_millis(self.deadline_ms).saturating_sub(since_epoch(now))
    }

    /// Whole seconds until the deadline, rounded up (so 3.9 s left reads 4).
    pub fn secs_left(&self, now: SystemTime) -> u64 {
        self.time_left(now).as_millis().div_ceil(1000) as u64
    }

    /// The deadline as RFC 3339 text.
    pub fn deadline(&self) -> String {
        let at = UNIX_EPOCH + Duration::from_millis(self.deadline_ms);
        humantime::format_rfc3339_seconds(at).to_string()
    }
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn deadline_after(ctx: &Context, within: Duration) -> u64 {
    (since_epoch(ctx.env.now()) + within).as_millis() as u64
}

/// The pending change, if any.
pub fn load(store: &Store) -> Result<Option<Pending>> {
    store.verify()?;
    let path = store.dir().join(PENDING_FILE);
    match store::read_trusted(&path, store.euid())? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::state(
                format!("{} is corrupt: {e}", path.display()),
                Some("inspect it; `sysprof rollback` undoes the change, then remove the file"),
            )
        }),
    }
}

/// Writes the pending file (under the lock) and marks the target as pending.
fn save(store: &Store, pending: &Pending) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(pending).expect("pending serialises");
    store::write_atomic(store.dir(), PENDING_FILE, &bytes)?;
    store.mark_target_pending()
}

/// Removes the pending file (under the lock) and the target's mark.
fn clear(store: &Store) -> Result<()> {
    store::remove_durably(store.dir(), PENDING_FILE)?;
    store.clear_target_pending()
}

/// Changes the pending file under the lock, if it is still the one named by `token`.
fn update(
    ctx: &Context,
    token: &str,
    change: impl FnOnce(&mut Pending),
) -> Result<Option<Pending>> {
    let _lock = ctx.store.lock(ctx.lock_timeout)?;
    let Some(mut pending) = load(&ctx.store)?.filter(|p| p.token == token) else {
        return Ok(None);
    };
    change(&mut pending);
    save(&ctx.store, &pending)?;
    Ok(Some(pending))
}

fn awaiting(p: &Pending, now: SystemTime) -> Error {
    Error::state(
        format!(
            "a change awaits confirmation: {} ({:?} mode), rolled back at {} ({}s left) unless confirmed",
            p.profile.name,
            p.mode,
            p.deadline(),
            p.secs_left(now)
        ),
        Some("run `sysprof confirm` to keep it, or `sysprof rollback` to undo it now"),
    )
}

/// How to start a pending change.
pub struct Request {
    /// Who confirms.
    pub mode: Mode,
    /// Time until the automatic rollback.
    pub within: Duration,
    /// The applying process (watch mode).
    pub owner: Option<Owner>,
    /// `kernel.random.boot_id` now.
    pub boot_id: Option<String>,
    /// How the watcher is started, recorded for `status`.
    pub watcher: String,
    /// Keep (and persist) keys sysprof set earlier that the profile no longer names.
    pub keep_released: bool,
    /// Allow writes that cannot be undone until reboot (such a change cannot be reverted at
    /// the deadline either).
    pub allow_irreversible: bool,
    /// A saved plan the change must equal exactly (`apply PLAN.json`).
    pub plan: Option<crate::change::saved::SavedPlan>,
}

/// What [`start`] did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
#[allow(clippy::large_enum_variant)] // made once per command; boxing would buy nothing
pub enum Started {
    /// The kernel already matches the profile: nothing pending.
    InSync,
    /// Applied without persisting; the pending change names the record.
    Applied {
        /// Record id.
        id: String,
        /// History position.
        seq: u64,
        /// The record.
        record: Record,
        /// The pending change.
        pending: Pending,
    },
}

/// Applies without persisting, with a pending deadline and a running watcher (`launch`, which
/// returns the watcher's pid when it knows it). The lock is held throughout: the pending file is
/// written and the watcher started *before* the first kernel write, so whatever this process
/// gets to, the watcher finds it (by record id, or by the first apply of this profile after
/// `after_seq`).
pub fn start(
    ctx: &Context,
    profile: &Profile,
    req: Request,
    launch: &mut dyn FnMut(&Pending) -> Result<Option<u32>>,
) -> Result<(Plan, Started)> {
    let lock = ctx.store.lock(ctx.lock_timeout)?;
    transaction::recover(ctx, &lock)?;
    if let Some(p) = load(&ctx.store)? {
        return Err(awaiting(&p, ctx.env.now()));
    }
    let mut pending = new_pending(ctx, profile, &req)?;
    save(&ctx.store, &pending)?;
    match launch(&pending) {
        Ok(pid) => pending.watcher_pid = pid,
        Err(e) => {
            clear(&ctx.store)?;
            return Err(e);
        }
    }
    save(&ctx.store, &pending)?;
    let options = apply::Options {
        persist: Persist::No,
        keep_released: req.keep_released,
        allow_irreversible: req.allow_irreversible,
        plan: req.plan.clone(),
    };
    let applied = apply::apply(ctx, &lock, profile, &options);
    let (plan, outcome) = match applied {
        Ok(done) => done,
        Err(e) => {
            clear(&ctx.store)?;
            return Err(e);
        }
    };
    let Outcome::Applied { id, seq, record } = outcome else {
        clear(&ctx.store)?;
        return Ok((plan, Started::InSync));
    };
    pending.record = Some(id.clone());
    pending.deadline_ms = deadline_after(ctx, req.within);
    save(&ctx.store, &pending)?;
    let started = Started::Applied {
        id,
        seq,
        record,
        pending,
    };
    Ok((plan, started))
}

fn new_pending(ctx: &Context, profile: &Profile, req: &Request) -> Result<Pending> {
    let plan = apply::plan(ctx, profile, req.keep_released)?;
    let persist = ctx.persist_file.as_ref().map(|path| PersistTarget {
        path: path.display().to_string(),
        after: persist::render(&plan, &profile.path),
    });
    let now = ctx.env.now();
    Ok(Pending {
        format: PENDING_FORMAT,
        token: format!("{:x}-{}", since_epoch(now).as_nanos(), ctx.env.pid()),
        mode: req.mode,
        profile: apply::profile_ref(profile),
        after_seq: ctx.store.history()?.last().map_or(0, |e| e.seq),
        record: None,
        created: humantime::format_rfc3339_seconds(now).to_string(),
        deadline_ms: deadline_after(ctx, req.within),
        owner: req.owner.clone(),
        watcher_pid: None,
        watcher: req.watcher.clone(),
        boot_id: req.boot_id.clone(),
        persist,
        reverting: None,
        target: Some(ctx.tree.identity()?),
    })
}

/// After a healthy watch with `--confirm-within`: wait for a person now, until `within` from now.
pub fn hand_over(ctx: &Context, token: &str, within: Duration) -> Result<Pending> {
    let deadline = deadline_after(ctx, within);
    update(ctx, token, |p| {
        p.mode = Mode::Confirm;
        p.owner = None;
        p.deadline_ms = deadline;
    })?
    .ok_or_else(|| Error::state("the pending change was rolled back during the watch", None))
}

/// Why the pending change must be rolled back now, if it must.
pub fn due(p: &Pending, env: &dyn Env, boot_id: Option<&str>) -> Option<Reason> {
    if let Some(reason) = p.reverting {
        return Some(reason);
    }
    if let (Some(then), Some(now_id)) = (p.boot_id.as_deref(), boot_id) {
        if then != now_id {
            return Some(Reason::Rebooted);
        }
    }
    if p.mode == Mode::Watch && p.owner.as_ref().is_some_and(|o| !o.alive(env)) {
        return Some(Reason::OwnerDied);
    }
    (p.time_left(env.now()).is_zero()).then_some(Reason::Deadline)
}

/// The applied record of a pending change and whether it is still in effect.
fn target(ctx: &Context, p: &Pending) -> Result<Option<(String, bool)>> {
    let history = history::entries(ctx)?;
    let found = history.entries.iter().find(|e| match &p.record {
        Some(id) => e.id == *id,
        None => {
            e.seq > p.after_seq
                && e.record.kind == RecordKind::Apply
                && e.record
                    .profile
                    .as_ref()
                    .is_some_and(|r| r.sha256 == p.profile.sha256)
        }
    });
    Ok(found.map(|e| (e.id.clone(), e.in_effect)))
}

/// What [`enforce`] found or did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
#[allow(clippy::large_enum_variant)] // made once per poll; boxing would buy nothing
pub enum Enforced {
    /// No pending change (or another one than the watcher's).
    Gone,
    /// Not due yet.
    Waiting {
        /// Time left.
        #[serde(serialize_with = "crate::profile::section::secs")]
        left: Duration,
    },
    /// The change had already been rolled back by hand; the pending file was removed.
    Cleared,
    /// Rolled back.
    Reverted {
        /// Why.
        reason: Reason,
        /// The rollback (None: the change never reached the kernel, or a reboot undid it).
        rollback: Option<RolledBack>,
    },
}

/// What a look at the pending change calls for.
#[allow(clippy::large_enum_variant)] // made once per poll
enum Verdict {
    Gone,
    Wait(Duration),
    Clear,
    Revert(Pending, Reason, Option<(String, bool)>),
}

fn assess(
    ctx: &Context,
    token: Option<&str>,
    force: Option<Reason>,
    boot_id: Option<&str>,
) -> Result<Verdict> {
    let Some(p) = load(&ctx.store)?.filter(|p| token.is_none_or(|t| t == p.token)) else {
        return Ok(Verdict::Gone);
    };
    let found = target(ctx, &p)?;
    Ok(match force.or_else(|| due(&p, ctx.env, boot_id)) {
        Some(reason) => Verdict::Revert(p, reason, found),
        None if p.record.is_some() && !found.is_some_and(|(_, live)| live) => Verdict::Clear,
        None => Verdict::Wait(p.time_left(ctx.env.now())),
    })
}

/// Rolls the pending change back if it is due (or `force`d); the watcher calls this in a loop.
/// Looking is lock-free (every state file is replaced by rename); acting takes the lock and
/// looks again.
pub fn enforce(
    ctx: &Context,
    token: Option<&str>,
    force: Option<Reason>,
    boot_id: Option<&str>,
) -> Result<Enforced> {
    match assess(ctx, token, force, boot_id)? {
        Verdict::Gone => return Ok(Enforced::Gone),
        Verdict::Wait(left) => return Ok(Enforced::Waiting { left }),
        Verdict::Clear | Verdict::Revert(..) => {}
    }
    let lock = ctx.store.lock(ctx.lock_timeout)?;
    enforce_locked(ctx, &lock, token, force, boot_id)
}

/// [`enforce`] for a caller that holds the lock.
pub fn enforce_locked(
    ctx: &Context,
    lock: &StoreLock,
    token: Option<&str>,
    force: Option<Reason>,
    boot_id: Option<&str>,
) -> Result<Enforced> {
    // An apply killed between its kernel writes and its commit left a journal: finish or undo
    // it first, so the history says whether there is a change to roll back.
    transaction::recover(ctx, lock)?;
    match assess(ctx, token, force, boot_id)? {
        Verdict::Gone => Ok(Enforced::Gone),
        Verdict::Wait(left) => Ok(Enforced::Waiting { left }),
        Verdict::Clear => {
            clear(&ctx.store)?;
            Ok(Enforced::Cleared)
        }
        Verdict::Revert(p, reason, found) => revert(ctx, lock, p, reason, found),
    }
}

/// Marks the pending change as reverting (so a confirmation cannot race it), rolls back the
/// applied record if it is still in effect, and clears the pending file.
fn revert(
    ctx: &Context,
    lock: &StoreLock,
    mut p: Pending,
    reason: Reason,
    found: Option<(String, bool)>,
) -> Result<Enforced> {
    check_target(ctx, &p)?;
    p.reverting = Some(reason);
    save(&ctx.store, &p)?;
    let rolled = match found {
        // After a reboot the kernel no longer holds the change: record that, write nothing.
        Some((id, true)) if reason == Reason::Rebooted => {
            Some(rollback::record_lost(ctx, lock, &id)?)
        }
        // The deadline is the operator's decision made in advance: it applies whatever
        // another writer did since.
        Some((id, true)) => {
            let force = rollback::Options {
                dry_run: false,
                force: true,
            };
            Some(rollback::rollback(
                ctx,
                lock,
                rollback::Target::Id(&id),
                force,
            )?)
        }
        _ => None,
    };
    clear(&ctx.store)?;
    Ok(Enforced::Reverted {
        reason,
        rollback: rolled,
    })
}

/// Brings the state dir to rest before a command runs: reverts a pending change that is due
/// (deadline passed, host rebooted, watching process gone), also when its watcher died, and
/// (with `wait`, for commands that change things) finishes an interrupted change. With `wait`
/// the lock is waited for like any change; without, a command that only reads skips this while
/// another sysprof holds the lock (that one is acting). Returns what was enforced.
pub fn settle(ctx: &Context, wait: bool) -> Result<Option<Enforced>> {
    let unfinished = match ctx.store.journal() {
        Ok(journal) => journal.is_some(),
        // A reading command reports a damaged journal (`status`); only recovery may act on it.
        Err(_) if !wait => return Ok(None),
        Err(e) => return Err(e),
    };
    let pending = load(&ctx.store)?;
    let boot = boot_id(&ctx.tree);
    let due_now = pending
        .as_ref()
        .is_some_and(|p| due(p, ctx.env, boot.as_deref()).is_some());
    // A command that only reads leaves an unfinished change for `status` to show and a mutating
    // command to finish; a due pending change it reverts.
    if !due_now && (!wait || !unfinished) {
        return Ok(None);
    }
    let timeout = if wait {
        ctx.lock_timeout
    } else {
        Duration::ZERO
    };
    let lock = match ctx.store.lock(timeout) {
        Ok(lock) => lock,
        Err(Error::Locked { .. }) if !wait => return Ok(None),
        Err(e) => return Err(e),
    };
    transaction::recover(ctx, &lock)?;
    match pending {
        Some(_) => enforce_locked(ctx, &lock, None, None, boot.as_deref()).map(Some),
        None => Ok(None),
    }
}

/// `kernel.random.boot_id`, to tell a reboot from a deadline.
pub fn boot_id(tree: &crate::kernel::SysctlTree) -> Option<String> {
    let key = crate::profile::key::SysctlKey::parse("kernel.random.boot_id").ok()?;
    tree.read_text(&key).ok().map(|t| t.trim().to_owned())
}

/// Refuses to act on a pending change from another place than the one it was made to: a
/// watcher that ended up in another network namespace (or on another tree) must not write
/// there.
fn check_target(ctx: &Context, p: &Pending) -> Result<()> {
    let Some(expected) = &p.target else {
        return Ok(());
    };
    let here = ctx.tree.identity()?;
    if &here == expected {
        return Ok(());
    }
    Err(Error::environment(
        format!(
            "the pending change of {} was made to {expected} (sysctl tree and network namespace), but this process sees {here}: refusing to write here",
            p.profile.name
        ),
        Some(
            "run `sysprof recover` (or rollback) inside the namespace the change was made in, e.g. with --netns",
        ),
    ))
}

/// What [`confirm`] did.
#[derive(Debug, Serialize)]
pub struct Confirmed {
    /// The change that was pending.
    pub pending: Pending,
    /// The persisting record, when there was something to persist.
    pub persisted: Option<Committed>,
}

/// Keeps the pending change: persists it as its own journaled record and drops the deadline.
pub fn confirm(ctx: &Context, boot_id: Option<&str>) -> Result<Confirmed> {
    let lock = ctx.store.lock(ctx.lock_timeout)?;
    transaction::recover(ctx, &lock)?;
    let p = load(&ctx.store)?
        .ok_or_else(|| Error::state("nothing awaits confirmation", Some("see `sysprof status`")))?;
    if let Some(reason) = due(&p, ctx.env, boot_id) {
        enforce_locked(ctx, &lock, Some(&p.token), None, boot_id)?;
        return Err(too_late(&p, reason));
    }
    let Some((id, live)) = target(ctx, &p)? else {
        return Err(Error::state(
            "the pending change is still being applied",
            Some("try again in a moment"),
        ));
    };
    if !live {
        clear(&ctx.store)?;
        return Err(Error::state(
            "the pending change was already rolled back",
            None,
        ));
    }
    let persisted = persist_step(ctx, &lock, &p, &id)?;
    clear(&ctx.store)?;
    Ok(Confirmed {
        pending: p,
        persisted,
    })
}

/// Why a confirmation came too late, in words.
fn too_late(p: &Pending, reason: Reason) -> Error {
    let name = &p.profile.name;
    let message = match reason {
        Reason::Deadline => format!(
            "too late: the deadline for {name} passed at {}; the change was rolled back",
            p.deadline()
        ),
        Reason::Rebooted => format!(
            "too late: the host rebooted before {name} was confirmed, which undid the unpersisted change; it is recorded as rolled back and nothing was written"
        ),
        Reason::OwnerDied => format!(
            "too late: the `apply --watch` that owned {name} died before its window ended; the change was rolled back"
        ),
        Reason::GateTripped => format!(
            "too late: a health gate tripped while watching {name}; the change was rolled back"
        ),
    };
    Error::state(message, Some("apply it again"))
}

/// Writes the sysctl.d file as a change repeating the applied key changes (their `before` is
/// the value before the confirmed apply), so that one `sysprof rollback` undoes values and file.
fn persist_step(
    ctx: &Context,
    lock: &StoreLock,
    p: &Pending,
    id: &str,
) -> Result<Option<Committed>> {
    let Some(target) = &p.persist else {
        return Ok(None);
    };
    let before = persist::read(Path::new(&target.path), ctx.store.euid())?;
    if before.as_deref() == Some(target.after.as_str()) {
        return Ok(None);
    }
    let (_, applied) = ctx.store.load(id)?;
    // `restores` names the confirmed apply: this record takes its place in the history's stack,
    // so one `sysprof rollback` undoes values and file together.
    // No key is written: the kernel holds the confirmed values already, so a crash here undoes
    // only the file and leaves the change pending, as it was.
    let change = Change {
        kind: RecordKind::Apply,
        profile: applied.profile.clone(),
        restores: Some(id.to_owned()),
        keys: Vec::new(),
        persist: Some(PersistChange {
            path: target.path.clone(),
            before,
            after: Some(target.after.clone()),
        }),
    };
    transaction::execute(ctx, lock, change).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::FixedClock;

    fn pending(mode: Mode, deadline_ms: u64) -> Pending {
        Pending {
            format: PENDING_FORMAT,
            token: "t".into(),
            mode,
            profile: ProfileRef {
                name: "p".into(),
                path: "p.yaml".into(),
                sha256: "0".repeat(64),
            },
            after_seq: 0,
            record: None,
            created: String::new(),
            deadline_ms,
            owner: None,
            watcher_pid: None,
            watcher: "fork".into(),
            boot_id: Some("boot-a".into()),
            persist: None,
            reverting: None,
            target: None,
        }
    }

    #[test]
    fn a_pending_change_is_due_at_its_deadline_after_a_reboot_or_when_its_owner_dies() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let at = FixedClock(now);
        let later = FixedClock(now + Duration::from_secs(5));
        let p = pending(Mode::Confirm, 1_005_000);
        assert_eq!(p.time_left(now), Duration::from_secs(5));
        assert_eq!(due(&p, &at, Some("boot-a")), None);
        assert_eq!(due(&p, &later, Some("boot-a")), Some(Reason::Deadline));
        assert_eq!(due(&p, &at, Some("boot-b")), Some(Reason::Rebooted));
        assert_eq!(
            due(&p, &at, None),
            None,
            "an unreadable boot id is not a reboot"
        );

        let mut watched = pending(Mode::Watch, 1_005_000);
        watched.owner = Owner::current(&at);
        assert_eq!(due(&watched, &at, None), None, "this test process is alive");
        watched.owner.as_mut().unwrap().start += 1;
        assert_eq!(
            due(&watched, &at, None),
            Some(Reason::OwnerDied),
            "same pid, other process"
        );
        watched.reverting = Some(Reason::GateTripped);
        assert_eq!(due(&watched, &at, None), Some(Reason::GateTripped));
    }

    #[test]
    fn the_pending_file_round_trips_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"), &crate::env::SYSTEM);
        store.ensure().unwrap();
        assert_eq!(load(&store).unwrap(), None);
        let p = pending(Mode::Confirm, 0);
        save(&store, &p).unwrap();
        assert_eq!(load(&store).unwrap(), Some(p));
        clear(&store).unwrap();
        assert_eq!(load(&store).unwrap(), None);
    }
}
