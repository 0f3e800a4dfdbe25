//! `sysprof show ID`: one snapshot in full.

use crate::change::record::SHORT_ID;
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Result, exit};

/// Prints one verified snapshot.
pub fn run(s: &Settings, id: &str, out: &mut Output) -> Result<i32> {
    let ctx = super::settled(s, false)?;
    let (id, record) = ctx.store.load(id)?;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "id": id, "record": record }))?;
        return Ok(exit::OK);
    }
    let profile = record
        .profile
        .as_ref()
        .map(|p| format!("{} ({}, sha256 {})", p.name, p.path, &p.sha256[..SHORT_ID]))
        .unwrap_or_default();
    out.block(|w| {
        writeln!(w, "snapshot {id}")?;
        let (r, kind) = (&record, format!("{:?}", record.kind));
        writeln!(
            w,
            "#{} {kind} at {} by {} on {} (kernel {})",
            r.seq, r.time, r.user, r.host, r.kernel
        )?;
        writeln!(w, "profile: {profile}")?;
        render::record(w, &record)
    })?;
    Ok(exit::OK)
}
