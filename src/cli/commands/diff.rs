//! `sysprof diff PROFILE [--out PLAN]`: current vs desired per key, and a unified diff; with
//! `--out`, the plan saved for `sysprof apply PLAN`.

use std::path::Path;

use super::{boot_overrides, checked_profile};
use crate::change::apply::{self, Persist};
use crate::change::context::Context;
use crate::change::plan::Plan;
use crate::change::saved::SavedPlan;
use crate::cli::flags::DiffFlags;
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Error, Result, exit};
use crate::profile::Profile;

/// Shows the plan; with `--exit-code`, exit 2 when changes are pending.
pub fn run(s: &Settings, path: &Path, flags: &DiffFlags, out: &mut Output) -> Result<i32> {
    let ctx = super::settled(s, false)?;
    // A saved plan names its profile by absolute path, so it applies from any directory.
    let path = match flags.out.as_deref() {
        Some(_) => std::path::absolute(path).map_err(|e| Error::io("resolve", path, e))?,
        None => path.to_owned(),
    };
    let (profile, report) = checked_profile(s, &ctx, &path, out)?;
    let plan = apply::plan(&ctx, &profile, flags.keep_released)?;
    let boot_overrides = boot_overrides(s, &profile, out)?;
    let saved = match flags.out.as_deref() {
        Some(to) => Some(save(&ctx, &profile, &plan, flags.keep_released, to)?),
        None => None,
    };
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "in_sync": plan.in_sync(), "plan": plan, "boot_overrides": boot_overrides, "findings": report.findings, "saved_to": saved }))?;
    } else {
        out.block(|w| render::plan(w, &plan))?;
        if let Some(to) = &saved {
            out.block(|w| {
                render::ok(
                    w,
                    &format!("plan saved to {to}; apply exactly it with `sysprof apply {to}`"),
                )
            })?;
        }
    }
    Ok(match flags.exit_code && !plan.in_sync() {
        true => exit::CHANGES_PENDING,
        false => exit::OK,
    })
}

/// Saves the change `plan` calls for to `to`, sealed; returns `to` as shown.
fn save(
    ctx: &Context,
    profile: &Profile,
    plan: &Plan,
    keep_released: bool,
    to: &Path,
) -> Result<String> {
    let change = apply::change(ctx, profile, plan, &Persist::from_context(ctx))?;
    SavedPlan::new(ctx, &change, keep_released)?.write(to)?;
    Ok(to.display().to_string())
}
