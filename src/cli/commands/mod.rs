//! One file per command. Each takes the validated settings and only the flags it needs, calls
//! the core, and renders the result as human text or JSON. Exit codes come from `error::exit`.

use std::path::Path;

use crate::adopt::boot::{self, Override};
use crate::canary::confirm as pending;
use crate::change::context::Context;
use crate::change::persist::FILE_NAME;
use crate::cli::flags::{Command, RolloutCommand};
use crate::cli::output::Output;
use crate::cli::render::{self, Diagnostic, Level};
use crate::cli::settings::Settings;
use crate::error::{Error, Result};
use crate::kernel::SysctlTree;
use crate::profile::Profile;
use crate::profile::key::SysctlKey;
use crate::schema::finding::Report;
use crate::schema::{Severity, validate};

mod apply;
mod confirm;
mod diff;
mod docs;
mod doctor;
mod explain;
mod export;
mod health;
mod history;
mod import;
mod k8s;
mod k8s_check;
mod metrics;
mod recover;
mod rollback;
mod rollout;
mod show;
mod status;
mod validate_cmd;
mod watch_deadline;

/// Runs one command; returns its exit code.
pub fn dispatch(s: &Settings, command: &Command, out: &mut Output) -> Result<i32> {
    match command {
        Command::Validate { profiles } => validate_cmd::run(s, profiles, out),
        Command::Diff { profile, flags } => diff::run(s, profile, flags, out),
        Command::Apply {
            profile,
            dry_run,
            safe,
        } => apply::run(s, profile, *dry_run, safe, out),
        Command::History => history::run(s, out),
        Command::Show { id } => show::run(s, id, out),
        Command::Rollback {
            to,
            profile,
            dry_run,
            force,
        } => {
            let options = crate::change::rollback::Options {
                dry_run: *dry_run,
                force: *force,
            };
            rollback::run(s, rollback_target(to, profile), options, out)
        }
        Command::Status => status::run(s, out),
        Command::Recover { discard_journal } => recover::run(s, *discard_journal, out),
        Command::Rollout(command) => rollout_dispatch(s, command, out),
        adopt_or_docs => adopt_dispatch(s, adopt_or_docs, out),
    }
}

/// What `rollback` undoes: `--to ID`, else `--profile NAME`'s last change, else the newest.
fn rollback_target<'a>(
    to: &'a Option<String>,
    profile: &'a Option<String>,
) -> crate::change::rollback::Target<'a> {
    use crate::change::rollback::Target;
    match (to, profile) {
        (Some(id), _) => Target::Id(id.as_str()),
        (None, Some(name)) => Target::Profile(name.as_str()),
        (None, None) => Target::Newest,
    }
}

/// The commands that adopt, diagnose or document rather than change.
fn adopt_dispatch(s: &Settings, command: &Command, out: &mut Output) -> Result<i32> {
    match command {
        Command::Explain { name } => explain::run(s, name, out),
        Command::Import {
            files,
            system,
            name,
            output,
        } => import::run(s, files, *system, name, output.as_deref(), out),
        Command::Export {
            prefix,
            non_default,
            name,
            output,
        } => export::run(
            s,
            prefix.as_deref(),
            *non_default,
            name,
            output.as_deref(),
            out,
        ),
        Command::Doctor {
            proc_net,
            thresholds,
        } => doctor::run(s, proc_net, &thresholds.into(), out),
        Command::Metrics(args) => metrics::run(s, args, out),
        Command::Completions { shell } => docs::completions(*shell, out),
        Command::Man { dir } => docs::man(dir.as_deref(), out),
        Command::Schema {
            json_schema,
            filter,
        } => docs::schema(s, *json_schema, filter, out),
        _ => unreachable!("dispatch handles the change commands"),
    }
}

fn rollout_dispatch(s: &Settings, command: &RolloutCommand, out: &mut Output) -> Result<i32> {
    match command {
        RolloutCommand::Health {
            profile,
            over,
            gates,
        } => health::run(s, profile, *over, gates, out),
        RolloutCommand::Confirm => confirm::run(s, out),
        RolloutCommand::Rollout(crate::cli::flags::RolloutPlanCommand::Plan { profile, hosts }) => {
            rollout::plan(profile, hosts, out)
        }
        RolloutCommand::K8s(crate::cli::flags::K8sCommand::PodSysctls { profile }) => {
            k8s::pod_sysctls(s, profile, out)
        }
        RolloutCommand::K8s(crate::cli::flags::K8sCommand::Check {
            files,
            allowed_unsafe,
        }) => k8s_check::run(s, files, allowed_unsafe, out),
        RolloutCommand::WatchDeadline { token } => watch_deadline::run(s, token, out),
    }
}

/// The context, with the state dir brought to rest first: an interrupted change finished and a
/// due pending change reverted (`confirm::settle`). Commands that only read pass `wait: false`.
pub fn settled(s: &Settings, wait: bool) -> Result<Context> {
    settled_with(s, wait).map(|(ctx, _)| ctx)
}

/// [`settled`], also returning what was enforced (for `status` to say so).
pub fn settled_with(s: &Settings, wait: bool) -> Result<(Context, Option<pending::Enforced>)> {
    let ctx = s.context()?;
    let enforced = pending::settle(&ctx, wait)?;
    Ok((ctx, enforced))
}

/// Loads and validates a profile, rendering its warnings and errors (human mode) on stderr.
/// Fails with [`Error::Invalid`] when the findings block.
pub fn checked_profile(
    s: &Settings,
    ctx: &Context,
    path: &Path,
    out: &mut Output,
) -> Result<(Profile, Report)> {
    let mut profile = Profile::load(path)?;
    let live = s.kernel.is_none();
    expand_patterns(&mut profile, live.then_some(&ctx.tree));
    let target = ctx.target.for_profile(&profile);
    let exists = |key: &SysctlKey| live.then(|| ctx.tree.exists(key));
    let report = validate::validate_live(&profile, &ctx.schema, &target, &exists);
    if !out.json() {
        let mut shown = report.clone();
        shown.findings.retain(|f| f.severity > Severity::Info);
        out.diag(|w| render::findings(w, &profile, &shown))?;
    }
    if report.blocks(s.deny_warnings) {
        let warnings = match s.deny_warnings {
            true => report.count(Severity::Warning),
            false => 0,
        };
        return Err(Error::Invalid {
            file: path.display().to_string(),
            errors: report.count(Severity::Error) + warnings,
            findings: serde_json::to_value(&report.findings).ok(),
        });
    }
    Ok((profile, report))
}

/// Expands a profile's pattern keys against the target: the matching keys of the live tree,
/// or offline (`--kernel`, a pod) the `all` and `default` instances every kernel has.
pub fn expand_patterns(profile: &mut Profile, tree: Option<&SysctlTree>) {
    match tree {
        Some(tree) => profile.expand_patterns(|glob| crate::adopt::glob::expand(glob, tree)),
        None => profile.expand_patterns(|glob| glob.offline_matches()),
    }
}

/// The sysctl.d lines that would override the profile's keys at the next boot, warned about on
/// stderr in human mode. A boot file that cannot be read is itself a warning, never a failure.
pub fn boot_overrides(s: &Settings, profile: &Profile, out: &mut Output) -> Result<Vec<Override>> {
    let Some(files) = s.boot_files() else {
        return Ok(Vec::new());
    };
    let settings = profile.settings.iter().map(|(k, s)| (k, &s.value));
    let found = match boot::overrides(settings, &files, FILE_NAME) {
        Ok(found) => found,
        Err(e) => {
            let message = format!("cannot check what boot applies after {FILE_NAME}: {e}");
            let d = Diagnostic::new(Level::Warning, message).code("boot-files");
            if !out.json() {
                out.diag(|w| render::diagnostic(w, &d))?;
            }
            return Ok(Vec::new());
        }
    };
    if !out.json() {
        out.diag(|w| found.iter().try_for_each(|o| render::boot_override(w, o)))?;
    }
    Ok(found)
}
