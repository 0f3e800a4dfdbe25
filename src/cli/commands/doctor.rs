//! `sysprof doctor`: counters and socket tables → failure modes with evidence and fix.

use std::io::Write as _;
use std::path::Path;

use anstyle::{AnsiColor, Style};

use super::{Io, io_err};
use crate::cli::Global;
use crate::cli::render;
use crate::diagnose::doctor::{self, Check, Inputs, Thresholds, Verdict};
use crate::error::{Result, exit};
use crate::kernel::SysctlTree;

/// Reads the tables (inside `--netns` when given), runs the checks, prints the verdicts.
pub fn run(g: &Global, proc_net: &Path, thresholds: &Thresholds, io: &mut Io) -> Result<i32> {
    if let Some(ns) = &g.netns {
        crate::kernel::netns::enter(ns)?;
    }
    let tree = SysctlTree::open(&g.root)?;
    let inputs = Inputs::read(proc_net, &tree);
    let diagnosis = doctor::diagnose(&inputs, thresholds);
    if io.json() {
        let findings = diagnosis.findings().count();
        io.emit(&serde_json::json!({ "ok": true, "findings": findings, "netns": g.netns, "diagnosis": diagnosis }))?;
        return Ok(exit::OK);
    }
    let mut rows = vec![
        ["CHECK", "VERDICT", "SUMMARY"]
            .map(|h| (h.to_owned(), Style::new().bold()))
            .to_vec(),
    ];
    for check in &diagnosis.checks {
        let summary = if check.summary.is_empty() {
            "-".to_owned()
        } else {
            check.summary.clone()
        };
        rows.push(vec![
            (check.id.to_owned(), Style::new()),
            (
                verdict_text(check.verdict).to_owned(),
                verdict_style(check.verdict),
            ),
            (summary, Style::new()),
        ]);
    }
    render::table(&mut io.out, &rows).map_err(io_err)?;
    for check in diagnosis.findings() {
        details(&mut io.out, check).map_err(io_err)?;
    }
    let states: Vec<String> = diagnosis
        .states
        .iter()
        .map(|(state, n)| {
            format!(
                "{}={n}",
                serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )
        })
        .collect();
    writeln!(
        io.out,
        "\nTCP sockets: {}",
        if states.is_empty() {
            "none".into()
        } else {
            states.join(" ")
        }
    )
    .map_err(io_err)?;
    Ok(exit::OK)
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Unavailable => "n/a",
        Verdict::Info => "info",
        Verdict::Warning => "warning",
        Verdict::Error => "error",
    }
}

fn verdict_style(v: Verdict) -> Style {
    match v {
        Verdict::Ok => AnsiColor::Green.on_default(),
        Verdict::Unavailable => Style::new().dimmed(),
        Verdict::Info => AnsiColor::Cyan.on_default().bold(),
        Verdict::Warning => AnsiColor::Yellow.on_default().bold(),
        Verdict::Error => AnsiColor::Red.on_default().bold(),
    }
}

fn details(out: &mut dyn std::io::Write, check: &Check) -> std::io::Result<()> {
    let style = verdict_style(check.verdict);
    writeln!(
        out,
        "\n{style}{}[{}]{style:#}: {}",
        verdict_text(check.verdict),
        check.id,
        check.summary
    )?;
    for line in &check.evidence {
        writeln!(out, "  evidence: {line}")?;
    }
    writeln!(out, "  = fix: {}", check.fix)?;
    let keys = if check.keys.is_empty() {
        "none: no sysctl fixes this".to_owned()
    } else {
        check.keys.join(", ")
    };
    writeln!(out, "  = keys: {keys}")?;
    if !check.profiles.is_empty() {
        let shipped: Vec<String> = check
            .profiles
            .iter()
            .map(|p| format!("profiles/{p}"))
            .collect();
        writeln!(out, "  = profiles: {}", shipped.join(", "))?;
    }
    Ok(())
}
