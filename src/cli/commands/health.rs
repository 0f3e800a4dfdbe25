//! `sysprof health PROFILE`: check the profile's health gates once now.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::{Io, io_err};
use crate::canary::health::{self, GateStatus, Sources};
use crate::cli::Global;
use crate::cli::render;
use crate::cli::rollout::GateArgs;
use crate::error::{Error, Result, exit};
use crate::profile::{Location, Profile};

/// Samples twice `over` apart and judges every gate; exit 8 when one trips.
pub fn run(g: &Global, path: &Path, over: Duration, flags: &GateArgs, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let profile = Profile::load(path)?;
    let spec = profile.health.clone().with_flags(&flags.gates);
    if spec.gates.is_empty() {
        return Err(Error::Profile {
            at: Location {
                file: path.display().to_string().into(),
                line: 1,
                col: 1,
            },
            message: format!("profile {} has no health gates", profile.name),
            help: Some("add a `health: {gates: …}` section or pass --gate COUNTER:LIMIT=N".into()),
        });
    }
    let src = Sources {
        proc_net: &flags.proc_net,
        tree: &ctx.tree,
    };
    let (checks, sample) = health::check_once(&src, &spec.gates, over);
    let tripped = checks.iter().any(|c| c.status == GateStatus::Tripped);
    let code = if tripped {
        exit::GATE_TRIPPED
    } else {
        exit::OK
    };
    if io.json() {
        io.emit(&serde_json::json!({ "ok": !tripped, "healthy": !tripped, "profile": profile.name, "over": over.as_secs_f64(), "checks": checks, "unavailable": sample.unavailable, "exit_code": code }))?;
        return Ok(code);
    }
    for check in &checks {
        let mark = match check.status {
            GateStatus::Ok => "ok     ",
            GateStatus::Tripped => "TRIPPED",
            GateStatus::Missing => "missing",
        };
        writeln!(io.out, "{mark}  {}", check.describe()).map_err(io_err)?;
    }
    let summary = format!(
        "{}: {} gate(s) over {}: {}",
        profile.name,
        checks.len(),
        humantime::format_duration(over),
        if tripped { "TRIPPED" } else { "healthy" }
    );
    if tripped {
        writeln!(io.out, "{summary}").map_err(io_err)?;
    } else {
        render::ok(&mut io.out, &summary).map_err(io_err)?;
    }
    Ok(code)
}
