//! `sysprof health PROFILE`: check the profile's health gates once now.

use std::path::Path;
use std::time::Duration;

use crate::canary::health::{self, GateStatus, Sources};
use crate::canary::safe_apply;
use crate::cli::output::Output;
use crate::cli::render::report;
use crate::cli::settings::Settings;

use crate::cli::flags::GateArgs;
use crate::error::{Result, exit};
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
        return Err(safe_apply::no_gates(&profile, "health"));
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
    } else {
        let span = humantime::format_duration(over).to_string();
        out.block(|w| report::gate_checks(w, &profile.name, &checks, &span))?;
    }
    Ok(code)
}
