//! Fault injection for crash-consistency tests.
//!
//! With the `fault-injection` cargo feature, [`point`] aborts the process when the environment
//! variable `SYSPROF_FAULT` names the point reached (`after-write:2` = the second time the point
//! `after-write` is reached), and [`io_point`] fails with EIO when `SYSPROF_FAULT_EIO` names it
//! (a disk error at that step, to test that the failure is handled, not crashed through).
//! Without the feature every point compiles to nothing, and release builds refuse the feature,
//! so production binaries cannot be made to crash or fail this way.

#[cfg(all(feature = "fault-injection", not(debug_assertions)))]
compile_error!("the fault-injection feature is for test builds only");

/// Counts a visit of point `name(detail)`; returns its full name and the visit number, or
/// `None` when no fault variable is set. Crash points are logged to `SYSPROF_FAULT_LOG` (the
/// list a crash test walks); I/O points are not.
#[cfg(feature = "fault-injection")]
fn visit(name: &str, detail: &str, logged: bool) -> Option<String> {
    static HITS: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());
    let log = std::env::var("SYSPROF_FAULT_LOG").ok();
    let armed = ["SYSPROF_FAULT", "SYSPROF_FAULT_EIO"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !armed && log.is_none() {
        return None;
    }
    // Records are named by their sha256, which differs on every run: name them by role instead
    // so that a point enumerated in one run can be targeted in the next.
    let record = detail
        .strip_suffix(".json")
        .is_some_and(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    // Likewise the target's files under /run/lock/sysprof are named by device and inode.
    let target = detail.ends_with(".pending") || detail.ends_with(".lock");
    let detail = match (record, target) {
        (true, _) => "record",
        (_, true) => "target",
        _ => detail,
    };
    let full = if detail.is_empty() {
        name.to_owned()
    } else {
        format!("{name}({detail})")
    };
    let mut hits = HITS.lock().unwrap();
    let count = match hits.iter_mut().find(|(n, _)| *n == full) {
        Some((_, c)) => {
            *c += 1;
            *c
        }
        None => {
            hits.push((full.clone(), 1));
            1
        }
    };
    if let Some(log) = log.filter(|_| logged) {
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| writeln!(f, "{full}:{count}"));
    }
    Some(format!("{full}:{count}"))
}

/// Marks a crash point; `detail` distinguishes places that share a name (a file name).
#[cfg(feature = "fault-injection")]
pub fn point(name: &str, detail: &str) {
    let visit = visit(name, detail, true);
    if visit.is_some_and(|v| std::env::var("SYSPROF_FAULT").is_ok_and(|w| w == v)) {
        std::process::abort();
    }
}

/// Marks a step that can fail with an I/O error (`SYSPROF_FAULT_EIO` names it).
#[cfg(feature = "fault-injection")]
pub fn io_point(name: &str, detail: &str) -> std::io::Result<()> {
    let visit = visit(name, detail, false);
    match visit.is_some_and(|v| std::env::var("SYSPROF_FAULT_EIO").is_ok_and(|w| w == v)) {
        true => Err(std::io::Error::from_raw_os_error(nix::libc::EIO)),
        false => Ok(()),
    }
}

/// Marks a crash point (no-op without the `fault-injection` feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str, _detail: &str) {}

/// Marks a step that can fail with an I/O error (no-op without the `fault-injection` feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn io_point(_name: &str, _detail: &str) -> std::io::Result<()> {
    Ok(())
}
