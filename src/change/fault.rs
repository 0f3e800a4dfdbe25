//! Fault injection for crash-consistency tests.
//!
//! With the `fault-injection` cargo feature, [`point`] aborts the process when the environment
//! variable `SYSPROF_FAULT` names the point reached (`after-write:2` = the second time the point
//! `after-write` is reached). Without the feature every point compiles to nothing, and release
//! builds refuse the feature, so production binaries cannot be made to crash this way.

#[cfg(all(feature = "fault-injection", not(debug_assertions)))]
compile_error!("the fault-injection feature is for test builds only");

/// Marks a crash point; `detail` distinguishes places that share a name (a file name).
#[cfg(feature = "fault-injection")]
pub fn point(name: &str, detail: &str) {
    static HITS: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());
    let wanted = std::env::var("SYSPROF_FAULT").ok();
    let log = std::env::var("SYSPROF_FAULT_LOG").ok();
    if wanted.is_none() && log.is_none() {
        return;
    }
    // Records are named by their sha256, which differs on every run: name them by role instead
    // so that a point enumerated in one run can be targeted in the next.
    let record = detail
        .strip_suffix(".json")
        .is_some_and(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    let detail = if record { "record" } else { detail };
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
    if let Some(log) = log {
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| writeln!(f, "{full}:{count}"));
    }
    if wanted.is_some_and(|w| w == format!("{full}:{count}")) {
        std::process::abort();
    }
}

/// Marks a crash point (no-op without the `fault-injection` feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str, _detail: &str) {}
