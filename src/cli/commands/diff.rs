//! `sysprof diff PROFILE`: current vs desired per key, and a unified diff.

use std::path::Path;

use super::{Io, checked_profile};
use crate::change::plan::Plan;
use crate::cli::Global;
use crate::cli::render;
use crate::error::{Result, exit};

/// Shows the plan; with `--exit-code`, exit 2 when changes are pending.
pub fn run(g: &Global, path: &Path, exit_code: bool, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let (profile, _) = checked_profile(g, &ctx.schema, &ctx.target, path, io)?;
    let plan = Plan::build(&profile, &ctx.tree);
    let boot_overrides = super::boot_check::check(g, &profile, io)?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "in_sync": plan.in_sync(), "plan": plan, "boot_overrides": boot_overrides }))?;
    } else {
        io.write_block(|out| render::plan(out, &plan))?;
    }
    Ok(if exit_code && !plan.in_sync() {
        exit::CHANGES_PENDING
    } else {
        exit::OK
    })
}
