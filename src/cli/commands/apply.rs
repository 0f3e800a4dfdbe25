//! `sysprof apply PROFILE`: the safe path from profile to kernel.

use std::path::Path;

use super::{Io, checked_profile};
use crate::change::apply::{self, Outcome};
use crate::change::store::SHORT_ID;
use crate::cli::Global;
use crate::cli::render;
use crate::cli::rollout::SafeApply;
use crate::error::{Result, exit};

/// Applies a profile (or shows what it would do with `--dry-run`).
pub fn run(g: &Global, path: &Path, dry_run: bool, safe: &SafeApply, io: &mut Io) -> Result<i32> {
    let mut ctx = g.context()?;
    let (profile, _) = checked_profile(g, &ctx.schema, &ctx.target, path, io)?;
    let boot_overrides = super::boot_check::check(g, &profile, io)?;
    // --stage, --watch, --confirm-within, and the refusal while a change awaits confirmation.
    if let Some(code) = super::canary::before_apply(g, &mut ctx, &profile, dry_run, safe, io)? {
        return Ok(code);
    }
    let (plan, outcome) = apply::apply(&ctx, &profile, dry_run)?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "profile": profile.name, "plan": plan, "result": outcome, "boot_overrides": boot_overrides }))?;
        return Ok(exit::OK);
    }
    io.write_block(|out| match &outcome {
        Outcome::InSync => render::ok(out, &format!("{}: in sync, nothing to change", profile.name)),
        Outcome::DryRun { record } => {
            render::record(out, record).and_then(|_| writeln!(out, "dry run: nothing was changed"))
        }
        Outcome::Applied { id, seq, record } => render::record(out, record).and_then(|_| {
            let persisted = record.persist.as_ref().map(|p| format!(", persisted to {}", p.path)).unwrap_or_default();
            render::ok(out, &format!("applied {} ({} key(s)){persisted}; snapshot {} (#{seq}); undo with `sysprof rollback`", profile.name, record.changes.len(), &id[..SHORT_ID]))
        }),
    })?;
    Ok(exit::OK)
}
