//! `sysprof diff PROFILE`: current vs desired per key, and a unified diff.

use std::path::Path;

use super::{boot_overrides, checked_profile};
use crate::change::apply;
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Result, exit};

/// Shows the plan; with `--exit-code`, exit 2 when changes are pending.
pub fn run(
    s: &Settings,
    path: &Path,
    exit_code: bool,
    keep_released: bool,
    out: &mut Output,
) -> Result<i32> {
    let ctx = super::settled(s, false)?;
    let (profile, report) = checked_profile(s, &ctx, path, out)?;
    let plan = apply::plan(&ctx, &profile, keep_released)?;
    let boot_overrides = boot_overrides(s, &profile, out)?;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "in_sync": plan.in_sync(), "plan": plan, "boot_overrides": boot_overrides, "findings": report.findings }))?;
    } else {
        out.block(|w| render::plan(w, &plan))?;
    }
    Ok(match exit_code && !plan.in_sync() {
        true => exit::CHANGES_PENDING,
        false => exit::OK,
    })
}
