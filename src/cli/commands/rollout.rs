//! `sysprof rollout plan PROFILE --hosts FILE`: which hosts land in which stage.

use std::path::Path;

use crate::canary::cohort;
use crate::cli::output::Output;
use crate::cli::render::{self, Diagnostic, Level, report};

use crate::error::Location;
use crate::error::{Error, Result, exit};
use crate::files;
use crate::profile::{MAX_PROFILE_BYTES, Profile};

/// `sysprof rollout plan PROFILE --hosts FILE`: which hosts land in which stage.
pub fn plan(path: &Path, hosts_file: &Path, out: &mut Output) -> Result<i32> {
    let profile = Profile::load(path)?;
    let spec = profile.rollout.as_ref().ok_or_else(|| Error::Profile {
        at: Location::start(path.display().to_string()),
        message: format!("profile {} has no `rollout` section", profile.name),
        help: Some("add `rollout: {stages: [{name: canary, percent: 1}, …]}`".into()),
        snippet: None,
    })?;
    let bytes = files::read(hosts_file, files::Policy::input(MAX_PROFILE_BYTES)).map_err(|e| {
        Error::Input {
            message: format!("cannot read hosts file {}: {e}", hosts_file.display()),
            help: None,
        }
    })?;
    let text = String::from_utf8_lossy(&bytes);
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
    out.block(|w| report::rollout_plan(w, &profile.name, &plan))?;
    out.diag(|w| {
        plan.warnings.iter().try_for_each(|warning| {
            render::diagnostic(w, &Diagnostic::new(Level::Warning, warning.as_str()))
        })
    })?;
    Ok(exit::OK)
}
