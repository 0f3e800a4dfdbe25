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
    let Ok(wanted) = std::env::var("SYSPROF_FAULT") else { return };
    let full = if detail.is_empty() { name.to_owned() } else { format!("{name}({detail})") };
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
    if let Ok(log) = std::env::var("SYSPROF_FAULT_LOG") {
        use std::io::Write;
        let _ = std::fs::OpenOptions::new().create(true).append(true).open(log).and_then(|mut f| writeln!(f, "{full}:{count}"));
    }
    if wanted == format!("{full}:{count}") {
        std::process::abort();
    }
}

/// Marks a crash point (no-op without the `fault-injection` feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str, _detail: &str) {}
