//! `sysprof history` and `sysprof show ID`.

use super::{Io, io_err};
use crate::change::rollback;
use crate::cli::Global;
use crate::cli::render;
use crate::error::{Result, exit};

/// Lists every recorded change, verifying each snapshot.
pub fn run(g: &Global, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let entries = rollback::entries(&ctx)?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "entries": entries }))?;
    } else {
        render::history(&mut io.out, &entries).map_err(io_err)?;
    }
    Ok(exit::OK)
}

/// Prints one verified snapshot.
pub fn show(g: &Global, id: &str, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let (id, record) = ctx.store.load(id)?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "id": id, "record": record }))?;
        return Ok(exit::OK);
    }
    let profile = record
        .profile
        .as_ref()
        .map(|p| format!("{} ({}, sha256 {})", p.name, p.path, &p.sha256[..12]))
        .unwrap_or_default();
    let lines = [
        format!("snapshot {id}"),
        format!(
            "#{} {:?} at {} by {} on {} (kernel {})",
            record.seq, record.kind, record.time, record.user, record.host, record.kernel
        ),
        format!("profile: {profile}"),
    ];
    for line in lines {
        writeln!(io.out, "{line}").map_err(io_err)?;
    }
    render::record(&mut io.out, &record).map_err(io_err)?;
    Ok(exit::OK)
}
