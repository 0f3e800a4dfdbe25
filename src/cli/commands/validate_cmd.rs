//! `sysprof validate PROFILE...`: schema and rule findings, no kernel access.

use std::path::PathBuf;

use super::{Io, io_err};
use crate::cli::Global;
use crate::cli::render;
use crate::error::{Result, exit};
use crate::profile::{ParseCache, Profile};
use crate::schema::validate;

/// Validates each profile; exit 3 if any has errors (or warnings with --deny-warnings).
pub fn run(g: &Global, paths: &[PathBuf], io: &mut Io) -> Result<i32> {
    let schema = g.load_schema()?;
    let target = g.target();
    let mut code = exit::OK;
    let mut results = Vec::new();
    let mut parsed = ParseCache::default();
    for path in paths {
        let profile = match Profile::load_with(path, &mut parsed) {
            Ok(p) => p,
            Err(e) => {
                render::error(&mut io.err, &e).map_err(io_err)?;
                results.push(
                    serde_json::json!({ "profile": path, "valid": false, "error": e.to_string() }),
                );
                code = code.max(e.exit_code());
                continue;
            }
        };
        let target = target.for_profile(&profile);
        let report = validate::validate(&profile, &schema, &target);
        let blocked = report.blocks(g.deny_warnings);
        if blocked {
            code = code.max(exit::INVALID_INPUT);
        }
        if io.json() {
            results.push(serde_json::json!({ "profile": path, "name": profile.name, "fingerprint": profile.fingerprint, "valid": !blocked, "target": target, "findings": report.findings }));
        } else {
            io.write_block(|out| {
                render::findings(out, &profile, &report)?;
                render::summary(out, &path.display().to_string(), &report)
            })?;
        }
    }
    if io.json() {
        io.emit(&serde_json::json!({ "ok": code == exit::OK, "profiles": results }))?;
    }
    Ok(code)
}
