//! `k8s check` for people: every error and warning about a manifest as a diagnostic quoting its
//! line and naming the workload, then one summary line per file. Notes (infos) are JSON only.

use std::io::{self, Write};

use super::{GREEN, RED, diagnostic, finding, paint};
use crate::adopt::manifests::Checked;
use crate::schema::Severity;

/// The findings of one manifest file and its summary line.
pub fn checked(w: &mut dyn Write, c: &Checked, deny_warnings: bool) -> io::Result<()> {
    for workload in &c.workloads {
        let shown = workload
            .findings
            .iter()
            .filter(|f| f.severity > Severity::Info);
        for f in shown {
            let mut d = finding(&workload.view, f);
            let place = format!("{} ({})", workload.title(), workload.pod_spec);
            d.notes.insert(0, ("in", place));
            diagnostic(w, &d)?;
            writeln!(w)?;
        }
    }
    summary(w, c, deny_warnings)
}

/// `FILE: valid (2 pod spec(s), 5 sysctl(s); 0 error(s), 1 warning(s))`.
fn summary(w: &mut dyn Write, c: &Checked, deny_warnings: bool) -> io::Result<()> {
    if c.workloads.is_empty() {
        return writeln!(w, "{}: no pod specs in {} document(s)", c.file, c.documents);
    }
    let verdict = match c.blocks(deny_warnings) {
        false => paint(GREEN, "valid"),
        true => paint(RED, "invalid"),
    };
    let sysctls: usize = c.workloads.iter().map(|w| w.sysctls.len()).sum();
    writeln!(
        w,
        "{}: {verdict} ({} pod spec(s), {sysctls} sysctl(s); {} error(s), {} warning(s))",
        c.file,
        c.workloads.len(),
        c.count(Severity::Error),
        c.count(Severity::Warning)
    )
}
