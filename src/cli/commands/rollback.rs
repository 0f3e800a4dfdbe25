//! `sysprof rollback [--to ID]`.

use super::{Io, io_err};
use crate::change::rollback;
use crate::change::store::SHORT_ID;
use crate::cli::Global;
use crate::cli::render;
use crate::error::{Result, exit};

/// Restores the state before the last apply in effect (or before `--to ID`).
pub fn run(g: &Global, to: Option<&str>, dry_run: bool, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let done = rollback::rollback(&ctx, to, dry_run)?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "dry_run": dry_run, "rollback": done }))?;
        return Ok(exit::OK);
    }
    render::record(&mut io.out, &done.record).map_err(io_err)?;
    let target = &done.target[..SHORT_ID];
    let line = match (&done.id, done.seq) {
        (Some(id), Some(seq)) => format!(
            "restored the state from before {target}; recorded as {} (#{seq}), undo with `sysprof rollback --to {}`",
            &id[..SHORT_ID],
            &id[..SHORT_ID]
        ),
        _ => format!("dry run: would restore the state from before {target}; nothing was changed"),
    };
    render::ok(&mut io.out, &line).map_err(io_err)?;
    Ok(exit::OK)
}
