//! `sysprof status`: unfinished change, lock holder, last change, drift of the last apply.

use super::{Io, io_err};
use crate::cli::Global;
use crate::error::{Result, exit};
use crate::key::SysctlKey;
use crate::rollback;
use crate::store::SHORT_ID;
use crate::value::Value;

/// Reports the store's state without taking the lock.
pub fn run(g: &Global, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let journal = ctx.store.journal()?;
    let holder = std::fs::read_to_string(ctx.store.dir().join("lock"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    let entries = rollback::entries(&ctx)?;
    let last = entries.last();
    let drift: Vec<serde_json::Value> = match last {
        Some(e) => e
            .record
            .changes
            .iter()
            .filter_map(|c| {
                let key = SysctlKey::parse(&c.key).ok()?;
                let now = ctx.tree.read(&key).ok().map(|v| v.to_string());
                let same = now
                    .as_ref()
                    .is_some_and(|n| Value::from_text(n).same_as(&Value::from_text(&c.after)));
                (!same)
                    .then(|| serde_json::json!({ "key": c.key, "expected": c.after, "now": now }))
            })
            .collect(),
        None => Vec::new(),
    };
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "state_dir": ctx.store.dir(), "unfinished": journal, "lock_holder": holder, "last": last, "drift": drift }))?;
        return Ok(exit::OK);
    }
    let mut lines = vec![format!("state dir: {}", ctx.store.dir().display())];
    lines.push(match &journal {
        Some(j) => format!("UNFINISHED change {} (phase {:?}): the next mutating command, or `sysprof recover`, will finish or undo it", &j.id[..SHORT_ID], j.phase),
        None => "no unfinished change".into(),
    });
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
            "drift: {} is {} (last change set {})",
            d["key"].as_str().unwrap_or(""),
            d["now"].as_str().unwrap_or("unreadable"),
            d["expected"].as_str().unwrap_or("")
        ));
    }
    for line in lines {
        writeln!(io.out, "{line}").map_err(io_err)?;
    }
    Ok(exit::OK)
}
