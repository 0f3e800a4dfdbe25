//! `sysprof apply --stage/--watch/--confirm-within`: the staged, watched, confirmed apply.
//!
//! `apply` hands over to [`before_apply`] once the profile is validated. A host outside the
//! requested stage stops here (exit 9). With `--watch` or `--confirm-within` the change is made
//! through `confirm::start` (not persisted, pending deadline, detached watcher), then watched
//! through `health::watch` and either persisted (`confirm::confirm`) or rolled back
//! (`confirm::enforce`, exit 8).

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Io, io_err};
use crate::canary::cohort;
use crate::canary::confirm::{
    self, Enforced, Launcher, Mode, Owner, Pending, Reason, Request, Started,
};
use crate::canary::health::{self, Check, Progress, Sources, Verdict};
use crate::change::context::Context;
use crate::change::store::SHORT_ID;
use crate::cli::Global;
use crate::cli::render;
use crate::cli::rollout::{SafeApply, WatcherChoice};
use crate::error::{Error, Result, exit};
use crate::profile::key::SysctlKey;
use crate::profile::rollout::Stage;
use crate::profile::{Location, Profile};

/// Where the host id comes from unless `--host-id` is given.
pub const MACHINE_ID: &str = "/etc/machine-id";

/// Runs the stage check, the pending check and the safe path; `None` means "plain apply".
pub fn before_apply(
    g: &Global,
    ctx: &mut Context,
    profile: &Profile,
    dry_run: bool,
    safe: &SafeApply,
    io: &mut Io,
) -> Result<Option<i32>> {
    let stage = match &safe.stage {
        Some(name) => {
            let placed = place(profile, name, safe.host_id.as_deref())?;
            if !placed.inside {
                not_in_stage(profile, &placed, io)?;
                return Ok(Some(exit::NOT_IN_STAGE));
            }
            if !io.json() {
                writeln!(io.err, "{}", placed.describe(&profile.name)).map_err(io_err)?;
            }
            Some(placed)
        }
        None => None,
    };
    if dry_run {
        return Ok(None);
    }
    refuse_if_pending(ctx)?;
    let watch = safe.watch.or(stage.as_ref().and_then(|p| p.stage.watch));
    if watch.is_none() && safe.confirm_within.is_none() {
        return Ok(None);
    }
    safe_apply(g, ctx, profile, watch, safe, stage.as_ref(), io).map(Some)
}

/// A host's place in a stage.
struct Placed {
    stage: Stage,
    host_id: String,
    cohort: f64,
    inside: bool,
}

impl Placed {
    fn describe(&self, profile: &str) -> String {
        let (relation, verdict) = if self.inside {
            ("<", "in")
        } else {
            ("≥", "not in")
        };
        format!(
            "{profile}: host {} is {verdict} stage `{}` (cohort {:.2} {relation} {}%)",
            self.host_id,
            self.stage.name,
            self.cohort,
            health::fmt_num(self.stage.percent)
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "name": self.stage.name, "percent": self.stage.percent, "host_id": self.host_id, "cohort": self.cohort, "in_stage": self.inside })
    }
}

fn place(profile: &Profile, stage: &str, host_id: Option<&str>) -> Result<Placed> {
    let spec = profile.rollout.as_ref().ok_or_else(|| Error::Profile {
        at: Location {
            file: profile.path.display().to_string().into(),
            line: 1,
            col: 1,
        },
        message: format!("--stage {stage}: the profile has no `rollout` section"),
        help: Some("add `rollout: {stages: [{name: canary, percent: 1}, …]}`".into()),
    })?;
    let stage = spec.stage(stage)?.clone();
    let host_id = match host_id {
        Some(id) => id.to_owned(),
        None => read_machine_id()?,
    };
    let cohort = cohort::cohort(&profile.fingerprint, &host_id);
    Ok(Placed {
        inside: cohort::in_stage(cohort, &stage),
        stage,
        host_id,
        cohort,
    })
}

fn read_machine_id() -> Result<String> {
    let text = std::fs::read_to_string(MACHINE_ID).map_err(|e| {
        Error::environment(
            format!("cannot read {MACHINE_ID} for the host id: {e}"),
            Some("pass --host-id ID (e.g. the inventory host name)"),
        )
    })?;
    let id = text.trim().to_owned();
    if id.is_empty() {
        return Err(Error::environment(
            format!("{MACHINE_ID} is empty"),
            Some("pass --host-id ID"),
        ));
    }
    Ok(id)
}

fn not_in_stage(profile: &Profile, placed: &Placed, io: &mut Io) -> Result<()> {
    if io.json() {
        return io.emit(&serde_json::json!({ "ok": true, "status": "not_in_stage", "profile": profile.name, "stage": placed.json(), "exit_code": exit::NOT_IN_STAGE }));
    }
    let text = format!("{}; nothing was changed", placed.describe(&profile.name));
    writeln!(io.out, "{text}").map_err(io_err)
}

/// Refuses a new change while one awaits confirmation (rolling that back first if it is due).
pub fn refuse_if_pending(ctx: &Context) -> Result<()> {
    let Some(p) = confirm::load(&ctx.store)? else {
        return Ok(());
    };
    if confirm::due(&p, (ctx.now)(), boot_id(ctx).as_deref()).is_some() {
        confirm::enforce(ctx, Some(&p.token), None, boot_id(ctx).as_deref())?;
        return Ok(());
    }
    Err(Error::state(
        format!(
            "a change awaits confirmation: {} ({}s left)",
            p.profile.name,
            p.secs_left((ctx.now)())
        ),
        Some(
            "run `sysprof confirm` to keep it, or `sysprof rollback` to undo it, before applying again",
        ),
    ))
}

/// `kernel.random.boot_id`, to tell a reboot from a deadline.
pub fn boot_id(ctx: &Context) -> Option<String> {
    let key = SysctlKey::parse("kernel.random.boot_id").ok()?;
    ctx.tree.read_text(&key).ok().map(|t| t.trim().to_owned())
}

fn no_gates(profile: &Profile) -> Error {
    Error::Profile {
        at: Location {
            file: profile.path.display().to_string().into(),
            line: 1,
            col: 1,
        },
        message: format!(
            "--watch: profile {} has no health gates to watch",
            profile.name
        ),
        help: Some("add a `health: {gates: …}` section or pass --gate COUNTER:LIMIT=N".into()),
    }
}

fn safe_apply(
    g: &Global,
    ctx: &mut Context,
    profile: &Profile,
    watch: Option<Duration>,
    safe: &SafeApply,
    stage: Option<&Placed>,
    io: &mut Io,
) -> Result<i32> {
    let spec = profile.health.clone().with_flags(&safe.gates.gates);
    if watch.is_some() && spec.gates.is_empty() {
        return Err(no_gates(profile));
    }
    let (mode, within) = match watch {
        Some(w) => (Mode::Watch, w + w.max(Duration::from_secs(30))),
        None => (Mode::Confirm, safe.confirm_within.unwrap_or_default()),
    };
    let launcher = launcher(safe.watcher);
    let req = Request {
        mode,
        within,
        owner: (mode == Mode::Watch).then(Owner::current).flatten(),
        boot_id: boot_id(ctx),
        watcher: launcher.describe(),
    };
    let exe = std::env::current_exe().map_err(|e| Error::io("find", "the sysprof binary", e))?;
    let base_args = watcher_args(g, ctx)?;
    let log = ctx.store.dir().join(confirm::WATCHER_LOG);
    let mut launch = |p: &Pending| {
        let mut args = base_args.clone();
        args.extend([
            "__watch-deadline".into(),
            "--token".into(),
            p.token.clone().into(),
        ]);
        let how = match &launcher {
            Launcher::SystemdRun(_) => Launcher::SystemdRun(format!("sysprof-watch-{}", p.token)),
            Launcher::Fork => Launcher::Fork,
        };
        confirm::spawn_watcher(&how, &exe, &args, &log)
    };
    let (_, started) = confirm::start(ctx, profile, req, &mut launch)?;
    let (id, seq, record, pending) = match started {
        Started::InSync => return in_sync(ctx, profile, io),
        Started::Applied {
            id,
            seq,
            record,
            pending,
        } => (id, seq, record, pending),
    };
    let applied = serde_json::json!({ "id": id, "seq": seq, "record": record });
    let stage_json = stage.map(Placed::json);
    let Some(window) = watch else {
        return awaiting(ctx, profile, &pending, applied, stage_json, io);
    };
    if !io.json() {
        render::record(&mut io.out, &record).map_err(io_err)?;
        let text = format!(
            "applied {} ({} key(s)), NOT persisted yet; watching {} gate(s) for {}",
            profile.name,
            record.changes.len(),
            spec.gates.len(),
            humantime::format_duration(window)
        );
        writeln!(io.out, "{text}").map_err(io_err)?;
    }
    let interval = safe
        .gates
        .interval
        .or(spec.interval)
        .unwrap_or(health::DEFAULT_INTERVAL);
    let verdict = {
        let src = Sources {
            proc_net: &safe.gates.proc_net,
            tree: &ctx.tree,
        };
        let live = !io.json() && std::io::stderr().is_terminal();
        let mut shown = 0;
        let mut observe = |p: &Progress| {
            if live {
                shown = live_line(&mut *io.err, p, shown);
            }
        };
        let verdict = health::watch(&src, &spec.gates, window, interval, &mut observe);
        if live {
            let _ = writeln!(io.err);
        }
        verdict
    };
    match &verdict {
        Verdict::Tripped { .. } => tripped(
            ctx, profile, &pending, &verdict, window, applied, stage_json, io,
        ),
        Verdict::Healthy { .. } => healthy(
            ctx, profile, &pending, &verdict, window, safe, applied, stage_json, io,
        ),
    }
}

/// The kernel already matches: nothing to watch or confirm; persist the file if it differs.
fn in_sync(ctx: &Context, profile: &Profile, io: &mut Io) -> Result<i32> {
    let (_, outcome) = crate::change::apply::apply(ctx, profile, false)?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "outcome": "in_sync", "profile": profile.name, "result": outcome }))?;
        return Ok(exit::OK);
    }
    let text = match outcome {
        crate::change::apply::Outcome::Applied { record, .. } => format!(
            "{}: kernel already in sync, nothing to watch; persisted to {}",
            profile.name,
            record.persist.map(|p| p.path).unwrap_or_default()
        ),
        _ => format!("{}: in sync, nothing to change", profile.name),
    };
    render::ok(&mut io.out, &text).map_err(io_err)?;
    Ok(exit::OK)
}

fn launcher(choice: WatcherChoice) -> Launcher {
    let systemd = || Path::new("/run/systemd/system").is_dir() && on_path("systemd-run");
    match choice {
        WatcherChoice::SystemdRun => Launcher::SystemdRun(String::new()),
        WatcherChoice::Auto if systemd() => Launcher::SystemdRun(String::new()),
        _ => Launcher::Fork,
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// The global flags that rebuild this context in the watcher (paths made absolute: a systemd
/// unit starts in `/`).
fn watcher_args(g: &Global, ctx: &Context) -> Result<Vec<OsString>> {
    let abs = |p: &Path| -> Result<PathBuf> {
        std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
    };
    let mut args: Vec<OsString> = vec![
        "--root".into(),
        abs(ctx.tree.root())?.into(),
        "--state-dir".into(),
        abs(ctx.store.dir())?.into(),
        "--lock-timeout".into(),
        g.lock_timeout.to_string().into(),
        "--color".into(),
        "never".into(),
        "--no-persist".into(),
    ];
    if let Some(ns) = &g.netns {
        let ns = if ns.contains('/') {
            abs(Path::new(ns))?.into_os_string()
        } else {
            ns.into()
        };
        args.extend(["--netns".into(), ns]);
    }
    if let Some(schema) = &g.schema {
        args.extend(["--schema".into(), abs(schema)?.into()]);
    }
    Ok(args)
}

/// Rewrites the live status line on a terminal; returns its width.
fn live_line(err: &mut dyn Write, p: &Progress, shown: usize) -> usize {
    let gates: Vec<String> = p.checks.iter().map(Check::brief).collect();
    let line = format!(
        "watching: {}s left | {}",
        p.remaining.as_millis().div_ceil(1000),
        gates.join(" | ")
    );
    let width = line.chars().count();
    let _ = write!(err, "\r{line}{}", " ".repeat(shown.saturating_sub(width)));
    let _ = err.flush();
    width
}

fn awaiting(
    ctx: &Context,
    profile: &Profile,
    pending: &Pending,
    applied: serde_json::Value,
    stage: Option<serde_json::Value>,
    io: &mut Io,
) -> Result<i32> {
    let left = pending.secs_left((ctx.now)());
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "outcome": "awaiting_confirmation", "profile": profile.name, "applied": applied, "pending": pending, "seconds_left": left, "stage": stage }))?;
        return Ok(exit::OK);
    }
    if let Some(record) = applied
        .get("record")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
    {
        render::record(&mut io.out, &record).map_err(io_err)?;
    }
    let text = format!(
        "applied {}, NOT persisted: run `sysprof confirm` within {}s (before {}) or it is rolled back automatically (watcher: {})",
        profile.name,
        left,
        pending.deadline(),
        pending.watcher
    );
    render::ok(&mut io.out, &text).map_err(io_err)?;
    Ok(exit::OK)
}

#[allow(clippy::too_many_arguments)]
fn tripped(
    ctx: &Context,
    profile: &Profile,
    pending: &Pending,
    verdict: &Verdict,
    window: Duration,
    applied: serde_json::Value,
    stage: Option<serde_json::Value>,
    io: &mut Io,
) -> Result<i32> {
    let enforced = confirm::enforce(
        ctx,
        Some(&pending.token),
        Some(Reason::GateTripped),
        boot_id(ctx).as_deref(),
    )?;
    let rollback = match &enforced {
        Enforced::Reverted { rollback, .. } => rollback.as_ref(),
        _ => None,
    };
    let after = match verdict {
        Verdict::Tripped { after, .. } => *after,
        Verdict::Healthy { .. } => Duration::ZERO,
    };
    let figures: Vec<String> = verdict.tripped().iter().map(|c| c.describe()).collect();
    if io.json() {
        io.emit(&serde_json::json!({ "ok": false, "outcome": "rolled_back", "profile": profile.name, "tripped": verdict.tripped(), "verdict": verdict, "applied": applied, "rollback": rollback, "stage": stage, "exit_code": exit::GATE_TRIPPED }))?;
        return Ok(exit::GATE_TRIPPED);
    }
    let head = format!(
        "health gate tripped {:.1}s into the {} watch: {}",
        after.as_secs_f64(),
        humantime::format_duration(window),
        figures.join("; ")
    );
    render::error(&mut io.err, &Error::state(head, None)).map_err(io_err)?;
    let undone = match rollback {
        Some(r) => format!(
            "rolled back {}: {} key(s) restored, snapshot {}{}",
            profile.name,
            r.record.changes.len(),
            r.id.as_deref().map(|i| &i[..SHORT_ID]).unwrap_or("-"),
            r.seq.map(|s| format!(" (#{s})")).unwrap_or_default()
        ),
        None => format!("{}: the change had already been undone", profile.name),
    };
    writeln!(io.err, "{undone}").map_err(io_err)?;
    Ok(exit::GATE_TRIPPED)
}

#[allow(clippy::too_many_arguments)]
fn healthy(
    ctx: &Context,
    profile: &Profile,
    pending: &Pending,
    verdict: &Verdict,
    window: Duration,
    safe: &SafeApply,
    applied: serde_json::Value,
    stage: Option<serde_json::Value>,
    io: &mut Io,
) -> Result<i32> {
    if let Some(within) = safe.confirm_within {
        let pending = confirm::hand_over(ctx, &pending.token, within)?;
        if io.json() {
            io.emit(&serde_json::json!({ "ok": true, "outcome": "awaiting_confirmation", "profile": profile.name, "verdict": verdict, "applied": applied, "pending": pending, "seconds_left": within.as_secs(), "stage": stage }))?;
            return Ok(exit::OK);
        }
        let text = format!(
            "healthy for {}; NOT persisted: run `sysprof confirm` within {}s (before {}) or it is rolled back",
            humantime::format_duration(window),
            within.as_secs(),
            pending.deadline()
        );
        render::ok(&mut io.out, &text).map_err(io_err)?;
        return Ok(exit::OK);
    }
    let confirmed = confirm::confirm(ctx, boot_id(ctx).as_deref())?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "outcome": "persisted", "profile": profile.name, "verdict": verdict, "applied": applied, "persisted": confirmed.persisted, "stage": stage }))?;
        return Ok(exit::OK);
    }
    let persisted = match &confirmed.persisted {
        Some((id, seq, record)) => format!(
            "persisted to {} (snapshot {}, #{seq})",
            record
                .persist
                .as_ref()
                .map(|p| p.path.as_str())
                .unwrap_or("-"),
            &id[..SHORT_ID]
        ),
        None => "nothing to persist".into(),
    };
    let text = format!(
        "healthy for {}: kept {}, {persisted}; undo with `sysprof rollback`",
        humantime::format_duration(window),
        profile.name
    );
    render::ok(&mut io.out, &text).map_err(io_err)?;
    Ok(exit::OK)
}
