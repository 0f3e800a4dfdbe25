//! `sysprof rollout plan PROFILE --hosts FILE`: which hosts land in which stage.

use std::io::Write;
use std::path::Path;

use crate::canary::cohort;
use crate::cli::output::{Output, stdout_err};
use crate::profile::health::fmt_num;

use crate::cli::render;
use crate::error::Location;
use crate::error::{Error, Result, exit};
use crate::profile::Profile;

/// `sysprof rollout plan PROFILE --hosts FILE`: which hosts land in which stage.
pub fn plan(path: &Path, hosts_file: &Path, out: &mut Output) -> Result<i32> {
    let profile = Profile::load(path)?;
    let spec = profile.rollout.as_ref().ok_or_else(|| Error::Profile {
        at: Location::start(path.display().to_string()),
        message: format!("profile {} has no `rollout` section", profile.name),
        help: Some("add `rollout: {stages: [{name: canary, percent: 1}, …]}`".into()),
        snippet: None,
    })?;
    let text = std::fs::read_to_string(hosts_file).map_err(|e| Error::io("read", hosts_file, e))?;
    let hosts = cohort::parse_hosts(&text).map_err(|why| Error::Profile {
        at: Location::start(hosts_file.display().to_string()),
        message: format!("hosts file: {why}"),
        help: Some("one `NAME [HOST_ID]` per line".into()),
        snippet: None,
    })?;
    let plan = cohort::plan(spec, &profile.fingerprint, &hosts);
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "profile": profile.name, "plan": plan }))?;
        return Ok(exit::OK);
    }
    render_plan(&profile, &plan, out)?;
    Ok(exit::OK)
}

fn render_plan(profile: &Profile, plan: &cohort::RolloutPlan, out: &mut Output) -> Result<()> {
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
        out.out,
        "rollout of {} ({}), {} host(s):",
        profile.name,
        &plan.fingerprint[..12],
        plan.hosts.len()
    )
    .map_err(stdout_err)?;
    render::table(&mut out.out, &rows).map_err(stdout_err)?;
    writeln!(out.out).map_err(stdout_err)?;
    let mut rows = vec![head(&["HOST", "HOST ID", "COHORT", "FIRST STAGE"])];
    for h in &plan.hosts {
        rows.push(vec![
            plain(h.host.clone()),
            plain(h.host_id.clone()),
            plain(format!("{:.2}", h.cohort)),
            plain(h.stage.clone().unwrap_or_else(|| "(none)".into())),
        ]);
    }
    render::table(&mut out.out, &rows).map_err(stdout_err)
}
