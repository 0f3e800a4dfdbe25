//! `sysprof validate PROFILE...`: schema and rule findings; the running kernel (or `--root`,
//! `--netns`) is only asked which keys exist, offline (`--kernel X`) not at all.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Result, exit};
use crate::profile::key::SysctlKey;
use crate::profile::{ParseCache, Profile};
use crate::schema::validate;

/// Validates each profile; exit 3 if any has errors (or warnings with --deny-warnings).
pub fn run(s: &Settings, paths: &[PathBuf], out: &mut Output) -> Result<i32> {
    let (schema, target) = (s.schema()?, s.target());
    let live = s.live_tree();
    let exists = |key: &SysctlKey| live.as_ref().map(|tree| tree.exists(key));
    let mut code = exit::OK;
    let mut results = Vec::new();
    let mut parsed = ParseCache::default();
    let mut shown = HashSet::new();
    for path in paths {
        let mut profile = match Profile::load_with(path, &mut parsed) {
            Ok(p) => p,
            Err(e) => {
                out.diag(|w| render::error(w, &e))?;
                results.push(unloadable(path, &e));
                code = code.max(e.exit_code());
                continue;
            }
        };
        super::expand_patterns(&mut profile, live.as_ref());
        let target = target.for_profile(&profile);
        let report = validate::validate_live(&profile, &schema, &target, &exists);
        let blocked = report.blocks(s.deny_warnings);
        if blocked {
            code = code.max(exit::INVALID_INPUT);
        }
        if out.json() {
            results.push(serde_json::json!({ "profile": path, "name": profile.name, "fingerprint": profile.fingerprint, "valid": !blocked, "target": target, "findings": report.findings }));
        } else {
            let name = path.display().to_string();
            out.block(|w| {
                let repeated = render::new_findings(w, &profile, &report, &mut shown)?;
                render::summary_with(w, &name, &report, repeated)
            })?;
        }
    }
    if out.json() {
        out.emit(&serde_json::json!({ "ok": code == exit::OK, "profiles": results }))?;
    }
    Ok(code)
}

/// The JSON entry of a profile that could not be loaded.
fn unloadable(path: &std::path::Path, e: &crate::error::Error) -> serde_json::Value {
    serde_json::json!({ "profile": path, "valid": false, "error": e.to_string() })
}
