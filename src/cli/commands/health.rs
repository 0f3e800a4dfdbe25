//! `sysprof health PROFILE`: check the profile's health gates once now.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::canary::health::{self, GateStatus, Sources};
use crate::cli::output::{Output, stdout_err};
use crate::cli::settings::Settings;

use crate::cli::flags::GateArgs;
use crate::cli::render;
use crate::error::Location;
use crate::error::{Error, Result, exit};
use crate::profile::Profile;

/// Samples twice `over` apart and judges every gate; exit 8 when one trips.
pub fn run(
    s: &Settings,
    path: &Path,
    over: Duration,
    flags: &GateArgs,
    out: &mut Output,
) -> Result<i32> {
    let ctx = s.context()?;
    let profile = Profile::load(path)?;
    let spec = profile.health.clone().with_flags(&flags.gates);
    if spec.gates.is_empty() {
        return Err(Error::Profile {
            at: Location::start(path.display().to_string()),
            message: format!("profile {} has no health gates", profile.name),
            help: Some("add a `health: {gates: …}` section or pass --gate COUNTER:LIMIT=N".into()),
            snippet: None,
        });
    }
    let src = Sources {
        proc_net: &flags.proc_net,
        tree: &ctx.tree,
        env: ctx.env,
    };
    let (checks, sample) = health::check_once(&src, &spec.gates, over);
    let tripped = checks.iter().any(|c| c.status == GateStatus::Tripped);
    let code = if tripped {
        exit::GATE_TRIPPED
    } else {
        exit::OK
    };
    if out.json() {
        out.emit(&serde_json::json!({ "ok": !tripped, "healthy": !tripped, "profile": profile.name, "over": over.as_secs_f64(), "checks": checks, "unavailable": sample.unavailable, "exit_code": code }))?;
        return Ok(code);
    }
    for check in &checks {
        let mark = match check.status {
            GateStatus::Ok => "ok     ",
            GateStatus::Tripped => "TRIPPED",
            GateStatus::Missing => "missing",
        };
        writeln!(out.out, "{mark}  {}", check.describe()).map_err(stdout_err)?;
    }
    let summary = format!(
        "{}: {} gate(s) over {}: {}",
        profile.name,
        checks.len(),
        humantime::format_duration(over),
        if tripped { "TRIPPED" } else { "healthy" }
    );
    if tripped {
        writeln!(out.out, "{summary}").map_err(stdout_err)?;
    } else {
        render::ok(&mut out.out, &summary).map_err(stdout_err)?;
    }
    Ok(code)
}
