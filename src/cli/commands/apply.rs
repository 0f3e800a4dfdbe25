//! `sysprof apply PROFILE`: validate, then apply plainly or through the staged, watched and
//! confirmed path (`canary::safe_apply`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::{boot_overrides, checked_profile};
use crate::canary::safe_apply::{self, Event, Policy, WatcherKind};
use crate::change::saved;
use crate::cli::flags::{SafeApply, WatcherChoice};
use crate::cli::output::Output;
use crate::cli::render::applied::{self, LiveLine, ProgressMode};
use crate::cli::settings::Settings;
use crate::error::Result;

/// Applies a profile (or shows what it would do with `--dry-run`).
pub fn run(
    s: &Settings,
    path: &Path,
    dry_run: bool,
    safe: &SafeApply,
    out: &mut Output,
) -> Result<i32> {
    let ctx = s.context()?;
    let saved = saved::load(path)?;
    let profile_path = match &saved {
        Some(plan) => PathBuf::from(&plan.profile.path),
        None => path.to_owned(),
    };
    let (profile, report) = checked_profile(s, &ctx, &profile_path, out)?;
    let boot = boot_overrides(s, &profile, out)?;
    let mut policy = policy(s, safe, dry_run)?;
    if let Some(plan) = saved {
        plan.verify(&ctx)?;
        policy.keep_released = plan.keep_released;
        policy.plan = Some(plan);
    }
    let mut live = LiveLine::new(progress_mode(safe, out));
    let (placed, result) = {
        let mut observe = |event: Event| live.observe(out, &profile.name, event);
        safe_apply::apply(&ctx, &profile, &policy, &mut observe)?
    };
    live.end(&mut out.err);
    applied::report(
        out,
        &ctx,
        &profile,
        placed.as_ref(),
        &result,
        &boot,
        &report,
    )
}

/// How a watch shows progress: `--progress-every` lines, a redrawn line on a terminal, else a
/// line a minute (CI logs and journald see a long watch move).
fn progress_mode(safe: &SafeApply, out: &Output) -> ProgressMode {
    const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    match safe.progress_every {
        Some(every) => ProgressMode::Lines(every),
        None if !out.json() && std::io::stderr().is_terminal() => ProgressMode::Redraw,
        None => ProgressMode::Lines(LOG_EVERY),
    }
}

/// The apply flags as the core's policy.
fn policy(s: &Settings, safe: &SafeApply, dry_run: bool) -> Result<Policy> {
    Ok(Policy {
        stage: safe.stage.clone(),
        host_id: safe.host_id.clone(),
        watch: safe.watch,
        confirm_within: safe.confirm_within,
        watcher: match safe.watcher {
            WatcherChoice::Auto => WatcherKind::Auto,
            WatcherChoice::SystemdRun => WatcherKind::SystemdRun,
            WatcherChoice::Fork => WatcherKind::Fork,
        },
        gates: safe.gates.gates.clone(),
        interval: safe.gates.interval,
        proc_net: safe.gates.proc_net.clone(),
        dry_run,
        keep_released: safe.keep_released,
        allow_irreversible: safe.allow_irreversible,
        plan: None,
        retry_tripped: safe.retry_tripped,
        watcher_args: s.watcher_args()?,
        watcher_can_leave: s.watcher_can_leave(),
    })
}
