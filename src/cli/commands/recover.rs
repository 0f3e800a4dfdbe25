//! `sysprof recover`: finish or undo an interrupted change explicitly.

use super::{Io, io_err};
use crate::change::rollback::{self, Recovered};
use crate::cli::Global;
use crate::cli::render;
use crate::error::{Result, exit};

/// Takes the lock and recovers.
pub fn run(g: &Global, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let lock = ctx.store.lock(ctx.lock_timeout)?;
    let recovered = rollback::recover(&ctx, &lock)?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "recovered": recovered }))?;
        return Ok(exit::OK);
    }
    let text = match recovered {
        Recovered::Nothing => "nothing to recover",
        Recovered::Completed => "the interrupted change had finished; it is now recorded",
        Recovered::RolledBack => {
            "the interrupted change was undone; the host is back to its previous state"
        }
    };
    render::ok(&mut io.out, text).map_err(io_err)?;
    Ok(exit::OK)
}
