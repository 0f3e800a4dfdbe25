//! `sysprof status`: unfinished change, lock holder, last change, and drift: keys another
//! writer changed since sysprof last set them.

use super::{Io, io_err};
use crate::change::rollback;
use crate::change::store::SHORT_ID;
use crate::cli::Global;
use crate::error::{Result, exit};

/// Reports the store's state without taking the lock.
pub fn run(g: &Global, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let journal = ctx.store.journal()?;
    let holder = ctx
        .store
        .lock_holder()
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    let entries = rollback::entries(&ctx)?;
    let last = entries.last();
    // Every key sysprof ever wrote, at the value it last wrote (not just the last change).
    let drift: Vec<serde_json::Value> = crate::diagnose::drift::detect(&ctx.tree, &entries)
        .into_iter()
        .map(|d| serde_json::to_value(d).expect("drift serialises"))
        .collect();
    let (pending, pending_line) = super::confirm::pending_status(&ctx)?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "state_dir": ctx.store.dir(), "unfinished": journal, "lock_holder": holder, "last": last, "drift": drift, "pending": pending }))?;
        return Ok(exit::OK);
    }
    let mut lines = vec![format!("state dir: {}", ctx.store.dir().display())];
    lines.push(match &journal {
        Some(j) => format!("UNFINISHED change {} (phase {:?}): the next mutating command, or `sysprof recover`, will finish or undo it", &j.id[..SHORT_ID], j.phase),
        None => "no unfinished change".into(),
    });
    lines.extend(pending_line);
    if let Some(pid) = holder {
        lines.push(format!(
            "pid {pid} holds the lock (a change may be in progress)"
        ));
    }
    lines.push(match last {
        Some(e) => format!(
            "last change: #{} {} {:?} at {} ({} key(s))",
            e.seq,
            &e.id[..SHORT_ID],
            e.record.kind,
            e.record.time,
            e.record.changes.len()
        ),
        None => "no changes recorded".into(),
    });
    for d in &drift {
        lines.push(format!(
            "drift: {} is {} (sysprof set {} in #{}); another writer changed it",
            d["key"].as_str().unwrap_or(""),
            d["now"].as_str().unwrap_or("unreadable"),
            d["expected"].as_str().unwrap_or(""),
            d["set_by"]
        ));
    }
    for line in lines {
        writeln!(io.out, "{line}").map_err(io_err)?;
    }
    Ok(exit::OK)
}
