//! `sysprof doctor`: counters and socket tables → failure modes with evidence and fix.

use std::path::Path;

use anstyle::Style;

use crate::cli::output::Output;
use crate::cli::render::{self, verdict_level};
use crate::cli::settings::Settings;
use crate::diagnose::doctor::{self, Diagnosis, Inputs, Thresholds};
use crate::error::{Result, exit};

/// Runs every check in this (or `--netns`'s) network namespace.
pub fn run(
    s: &Settings,
    proc_net: &Path,
    thresholds: &Thresholds,
    out: &mut Output,
) -> Result<i32> {
    let tree = s.tree()?;
    let inputs = Inputs::read(proc_net, &tree);
    let diagnosis = doctor::diagnose(&inputs, thresholds);
    if out.json() {
        let findings = diagnosis.findings().count();
        out.emit(&serde_json::json!({ "ok": true, "findings": findings, "netns": s.netns, "diagnosis": diagnosis }))?;
        return Ok(exit::OK);
    }
    out.block(|w| {
        render::table(w, &rows(&diagnosis))?;
        for check in diagnosis.findings() {
            writeln!(w)?;
            render::doctor_check(w, check)?;
        }
        writeln!(w, "\nTCP sockets: {}", states(&diagnosis))
    })?;
    Ok(exit::OK)
}

/// One row per check: id, verdict, summary.
fn rows(diagnosis: &Diagnosis) -> Vec<Vec<(String, Style)>> {
    let bold = Style::new().bold();
    let mut rows = vec![
        ["CHECK", "VERDICT", "SUMMARY"]
            .map(|h| (h.to_owned(), bold))
            .to_vec(),
    ];
    for check in &diagnosis.checks {
        let level = verdict_level(check.verdict);
        let summary = match check.summary.is_empty() {
            true => "-".to_owned(),
            false => check.summary.clone(),
        };
        let verdict = serde_json::to_value(check.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let word = if verdict == "unavailable" {
            "n/a".to_owned()
        } else {
            verdict
        };
        rows.push(vec![
            (check.id.to_owned(), Style::new()),
            (word, level.style()),
            (summary, Style::new()),
        ]);
    }
    rows
}

/// `ESTABLISHED=3 TIME_WAIT=12 …`, or `none`.
fn states(diagnosis: &Diagnosis) -> String {
    let states: Vec<String> = diagnosis
        .states
        .iter()
        .map(|(state, n)| {
            let name = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            format!("{}={n}", name.unwrap_or_default())
        })
        .collect();
    match states.is_empty() {
        true => "none".into(),
        false => states.join(" "),
    }
}
