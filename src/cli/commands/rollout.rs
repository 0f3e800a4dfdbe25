//! The rollout commands: `health`, `confirm`, `rollout plan`, `k8s pod-sysctls` and the hidden
//! deadline watcher, dispatched from one flattened command enum.

use std::io::Write;
use std::path::Path;

use super::{Io, io_err};
use crate::canary::cohort;
use crate::canary::health::fmt_num;
use crate::cli::Global;
use crate::cli::render;
use crate::cli::rollout::{K8sCommand, RolloutCommand, RolloutPlanCommand};
use crate::error::{Error, Result, exit};
use crate::profile::{Location, Profile};

/// Runs one of the rollout commands.
pub fn dispatch(g: &Global, command: &RolloutCommand, io: &mut Io) -> Result<i32> {
    match command {
        RolloutCommand::Health {
            profile,
            over,
            gates,
        } => super::health::run(g, profile, *over, gates, io),
        RolloutCommand::Confirm => super::confirm::run(g, io),
        RolloutCommand::Rollout(RolloutPlanCommand::Plan { profile, hosts }) => {
            plan(profile, hosts, io)
        }
        RolloutCommand::K8s(K8sCommand::PodSysctls { profile }) => {
            super::k8s::pod_sysctls(g, profile, io)
        }
        RolloutCommand::WatchDeadline { token } => super::confirm::watch_deadline(g, token, io),
    }
}

/// `sysprof rollout plan PROFILE --hosts FILE`: which hosts land in which stage.
fn plan(path: &Path, hosts_file: &Path, io: &mut Io) -> Result<i32> {
    let profile = Profile::load(path)?;
    let at = |line| Location {
        file: path.display().to_string().into(),
        line,
        col: 1,
    };
    let spec = profile.rollout.as_ref().ok_or_else(|| Error::Profile {
        at: at(1),
        message: format!("profile {} has no `rollout` section", profile.name),
        help: Some("add `rollout: {stages: [{name: canary, percent: 1}, …]}`".into()),
    })?;
    let text = std::fs::read_to_string(hosts_file).map_err(|e| Error::io("read", hosts_file, e))?;
    let hosts = cohort::parse_hosts(&text).map_err(|why| Error::Profile {
        at: Location {
            file: hosts_file.display().to_string().into(),
            line: 1,
            col: 1,
        },
        message: format!("hosts file: {why}"),
        help: Some("one `NAME [HOST_ID]` per line".into()),
    })?;
    let plan = cohort::plan(spec, &profile.fingerprint, &hosts);
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "profile": profile.name, "plan": plan }))?;
        return Ok(exit::OK);
    }
    render_plan(&profile, &plan, io)?;
    Ok(exit::OK)
}

fn render_plan(profile: &Profile, plan: &cohort::RolloutPlan, io: &mut Io) -> Result<()> {
    use anstyle::Style;
    let bold = Style::new().bold();
    let head = |cols: &[&str]| {
        cols.iter()
            .map(|c| (c.to_string(), bold))
            .collect::<Vec<_>>()
    };
    let plain = |t: String| (t, Style::new());
    let mut rows = vec![head(&["STAGE", "PERCENT", "WATCH", "HOSTS", "NEW HOSTS"])];
    for s in &plan.stages {
        let watch = s
            .watch
            .map(|w| humantime::format_duration(w).to_string())
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            plain(s.name.clone()),
            plain(format!("{}%", fmt_num(s.percent))),
            plain(watch),
            plain(s.total.to_string()),
            plain(s.new_hosts.join(" ")),
        ]);
    }
    writeln!(
        io.out,
        "rollout of {} ({}), {} host(s):",
        profile.name,
        &plan.fingerprint[..12],
        plan.hosts.len()
    )
    .map_err(io_err)?;
    render::table(&mut io.out, &rows).map_err(io_err)?;
    writeln!(io.out).map_err(io_err)?;
    let mut rows = vec![head(&["HOST", "HOST ID", "COHORT", "FIRST STAGE"])];
    for h in &plan.hosts {
        rows.push(vec![
            plain(h.host.clone()),
            plain(h.host_id.clone()),
            plain(format!("{:.2}", h.cohort)),
            plain(h.stage.clone().unwrap_or_else(|| "(none)".into())),
        ]);
    }
    render::table(&mut io.out, &rows).map_err(io_err)
}
