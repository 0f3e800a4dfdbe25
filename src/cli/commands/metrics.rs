//! `sysprof metrics`: Prometheus gauges for monitoring, printed or written as node_exporter's
//! textfile. Read-only: no lock, no recovery; the only write is the textfile.

use crate::canary::safe_apply;
use crate::cli::flags::MetricsArgs;
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::diagnose::metrics::{self, HealthInput};
use crate::error::{Result, exit};
use crate::profile::Profile;
use crate::profile::health::{Gate, HealthSpec};

/// Collects the metrics; exit 0, or the code of the first source that could not be read (the
/// metrics of the others are still printed or written).
pub fn run(s: &Settings, args: &MetricsArgs, out: &mut Output) -> Result<i32> {
    let ctx = s.context()?;
    let profile = args.profile.as_deref().map(Profile::load).transpose()?;
    let gates = gates(profile.as_ref(), &args.gates.gates)?;
    let health = (!gates.is_empty()).then(|| HealthInput {
        profile: profile.as_ref().map_or("", |p| p.name.as_str()),
        gates: &gates,
        proc_net: &args.gates.proc_net,
        over: args.over,
    });
    let collected = metrics::collect(&ctx, health.as_ref());
    for (_, e) in &collected.errors {
        out.diag(|w| render::error(w, e))?;
    }
    let text = metrics::exposition(&collected.families);
    let textfile = args.textfile.as_deref();
    let written = textfile
        .map(|dir| metrics::write_textfile(dir, &text))
        .transpose()?;
    if out.json() {
        let ok = collected.errors.is_empty();
        out.emit(
            &serde_json::json!({ "ok": ok, "textfile": written, "families": collected.families }),
        )?;
    } else if written.is_none() {
        out.plain(&text)?;
    }
    Ok(collected
        .errors
        .first()
        .map_or(exit::OK, |(_, e)| e.exit_code()))
}

/// The profile's gates with the `--gate` flags; a profile given without any is an error.
fn gates(profile: Option<&Profile>, flags: &[Gate]) -> Result<Vec<Gate>> {
    let spec = profile.map_or_else(HealthSpec::default, |p| p.health.clone());
    let gates = spec.with_flags(flags).gates;
    match profile {
        Some(p) if gates.is_empty() => Err(safe_apply::no_gates(p, "metrics --profile")),
        _ => Ok(gates),
    }
}
