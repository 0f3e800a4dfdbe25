//! Metrics for monitoring: what the state dir, the kernel and (optionally) a profile's health
//! gates say about this host, as Prometheus gauges.
//!
//! [`collect`] reads the history (verified records), the journal, the pending confirmation, the
//! lock holder, the keys sysprof manages (for drift) and, when asked, samples a profile's gates
//! once. It is read-only: it takes no lock and recovers nothing, so it can run from cron or a
//! systemd timer next to a change in flight and report it as it stands. A source that cannot be
//! read is reported (`sysprof_state_read_error{source}` and [`Metrics::errors`]), and the rest is
//! still collected. [`exposition`] renders the Prometheus text format (HELP and TYPE lines, label
//! values escaped, no timestamps, as node_exporter's textfile collector wants); [`write_textfile`]
//! puts it in place atomically. Printing is the command's job.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::canary::confirm::{self, Pending};
use crate::canary::health::{self, Check, GateStatus, Sources};
use crate::canary::safe_apply::boot_id;
use crate::canary::watcher;
use crate::change::context::Context;
use crate::change::history::{self, Entry, History};
use crate::change::record::{RecordKind, SHORT_ID};
use crate::change::store;
use crate::diagnose::drift;
use crate::error::{Error, Result};
use crate::profile::health::Gate;

/// The file node_exporter's textfile collector reads (`*.prom` in its directory).
pub const TEXTFILE: &str = "sysprof.prom";

/// One metric family; every sysprof metric is a gauge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Family {
    /// The metric name.
    pub name: &'static str,
    /// What it measures (the `# HELP` line).
    pub help: &'static str,
    /// Its samples; a family without samples is left out of the exposition.
    pub samples: Vec<Sample>,
}

/// One sample: labels and value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Label names and values, in order.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A sample without labels.
    pub fn plain(value: f64) -> Self {
        Self {
            labels: Vec::new(),
            value,
        }
    }

    /// A sample with labels.
    pub fn labelled(labels: &[(&'static str, &str)], value: f64) -> Self {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        Self { labels, value }
    }
}

/// Health gates to judge once, over `over`.
pub struct HealthInput<'a> {
    /// The profile's name (labels the gates; empty for gates given only as flags).
    pub profile: &'a str,
    /// The gates.
    pub gates: &'a [Gate],
    /// The `/proc/net` to read.
    pub proc_net: &'a Path,
    /// The span between the two samples (increases and rates need one).
    pub over: Duration,
}

/// What [`collect`] found.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The families, in exposition order.
    pub families: Vec<Family>,
    /// Sources that could not be read, with why (their metrics are missing).
    pub errors: Vec<(&'static str, Error)>,
}

impl Metrics {
    fn gauge(&mut self, name: &'static str, help: &'static str, samples: Vec<Sample>) {
        self.families.push(Family {
            name,
            help,
            samples,
        });
    }

    fn one(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.gauge(name, help, vec![Sample::plain(value)]);
    }

    /// The value of a read, or `None` with the error kept for `source`.
    fn read<T>(&mut self, source: &'static str, result: Result<T>) -> Option<T> {
        result.map_err(|e| self.errors.push((source, e))).ok()
    }
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Collects every metric; never fails (a source that cannot be read is reported in the result).
pub fn collect(ctx: &Context, health: Option<&HealthInput>) -> Metrics {
    let mut m = Metrics::default();
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    m.gauge(
        "sysprof_build_info",
        "Always 1; the version of sysprof that wrote these metrics.",
        vec![Sample::labelled(&version, 1.0)],
    );
    let now = epoch_secs(ctx.env.now());
    m.one(
        "sysprof_metrics_timestamp_seconds",
        "When these metrics were collected (Unix time): alert when the textfile goes stale.",
        now,
    );
    let entries = m.read("history", history::entries(ctx));
    let journal = m.read("journal", ctx.store.journal());
    let pending = m.read("pending", confirm::load(&ctx.store));
    read_errors(&mut m);
    if let Some(history) = &entries {
        history_metrics(&mut m, &history.entries);
        let help =
            "History entries whose record is missing or corrupt (rollback past them is refused).";
        m.one(
            "sysprof_damaged_history_entries",
            help,
            history.damaged.len() as f64,
        );
        drift_metrics(&mut m, ctx, history);
    }
    if let Some(journal) = &journal {
        let help = "1 while a change is unfinished (journal present): the next mutating command or `sysprof recover` finishes or undoes it.";
        m.one("sysprof_unfinished_change", help, flag(journal.is_some()));
    }
    let holder = ctx.store.lock_holder();
    let held = holder.is_some_and(|pid| ctx.env.process(pid).is_some());
    let help = "1 while a live process holds the state lock (a change in progress).";
    m.one("sysprof_lock_held", help, flag(held));
    if let Some(pending) = &pending {
        pending_metrics(&mut m, ctx, pending.as_ref());
    }
    if let Some(input) = health {
        health_metrics(&mut m, ctx, input);
    }
    m
}

fn read_errors(m: &mut Metrics) {
    let samples = ["history", "journal", "pending"]
        .iter()
        .map(|source| {
            let failed = m.errors.iter().any(|(s, _)| s == source);
            Sample::labelled(&[("source", *source)], flag(failed))
        })
        .collect();
    let help = "1 when the state dir's history, journal or pending confirmation cannot be read (their metrics are then missing).";
    m.gauge("sysprof_state_read_error", help, samples);
}

fn history_metrics(m: &mut Metrics, entries: &[Entry]) {
    let help = "Changes recorded in the history (applies and rollbacks).";
    m.one("sysprof_history_entries", help, entries.len() as f64);
    let Some(last) = entries.last() else {
        return;
    };
    let record = &last.record;
    if let Ok(at) = humantime::parse_rfc3339_weak(&record.time) {
        let help = "When the last change (apply or rollback) was made (Unix time).";
        m.one(
            "sysprof_last_change_timestamp_seconds",
            help,
            epoch_secs(at),
        );
    }
    let profile = record.profile.as_ref().map_or("", |p| p.name.as_str());
    let kind = match record.kind {
        RecordKind::Apply => "apply",
        RecordKind::Rollback => "rollback",
    };
    let labels = [
        ("profile", profile),
        ("id", &last.id[..SHORT_ID]),
        ("kind", kind),
    ];
    let help = "Always 1; the last change: its profile, record id (as `sysprof history` shows it) and kind (apply or rollback).";
    m.gauge(
        "sysprof_last_change_info",
        help,
        vec![Sample::labelled(&labels, 1.0)],
    );
    let help = "Keys the last change wrote.";
    m.one(
        "sysprof_last_change_keys",
        help,
        record.changes.len() as f64,
    );
}

fn drift_metrics(m: &mut Metrics, ctx: &Context, history: &History) {
    let help = "Keys sysprof holds (set by an apply still in effect).";
    let managed = history.managed().len();
    m.one("sysprof_managed_keys", help, managed as f64);
    let drifted = drift::detect(&ctx.tree, history);
    let help =
        "Keys changed by another writer since sysprof last set them (or no longer readable).";
    m.one("sysprof_drift_keys", help, drifted.len() as f64);
    let samples = drifted
        .iter()
        .map(|d| Sample::labelled(&[("key", &d.key.to_string())], 1.0))
        .collect();
    let help = "1 for each key another writer changed since sysprof set it.";
    m.gauge("sysprof_drifted_key", help, samples);
}

fn pending_metrics(m: &mut Metrics, ctx: &Context, pending: Option<&Pending>) {
    let help = "1 while an applied change awaits `sysprof confirm` (apply --confirm-within or --watch); it is rolled back at the deadline.";
    m.one("sysprof_pending_confirm", help, flag(pending.is_some()));
    let Some(p) = pending else {
        return;
    };
    let mode = match p.mode {
        confirm::Mode::Confirm => "confirm",
        confirm::Mode::Watch => "watch",
    };
    let labels = [("profile", p.profile.name.as_str()), ("mode", mode)];
    let deadline = p.deadline_ms as f64 / 1000.0;
    let help = "When the pending change is rolled back unless confirmed (Unix time).";
    let samples = vec![Sample::labelled(&labels, deadline)];
    m.gauge("sysprof_pending_confirm_deadline_seconds", help, samples);
    let due = confirm::due(p, ctx.env, boot_id(&ctx.tree).as_deref());
    let help = "1 when the pending change is due for rollback (deadline passed, watcher's owner gone, rebooted) and has not been rolled back yet.";
    m.one("sysprof_pending_confirm_overdue", help, flag(due.is_some()));
    let running = p
        .watcher_pid
        .is_some_and(|pid| watcher::running(ctx.env, pid));
    let help = "1 while the process enforcing the pending change's deadline runs (0 under systemd-run, which sysprof does not track by pid).";
    m.one("sysprof_pending_watcher_running", help, flag(running));
}

fn health_metrics(m: &mut Metrics, ctx: &Context, input: &HealthInput) {
    let src = Sources {
        proc_net: input.proc_net,
        tree: &ctx.tree,
        env: ctx.env,
    };
    let (checks, _) = health::check_once(&src, input.gates, input.over);
    let profile = input.profile;
    let gate = |c: &Check, value: f64| {
        let labels = [
            ("profile", profile),
            ("gate", c.gate.counter.as_str()),
            ("limit", c.gate.limit.name()),
        ];
        Sample::labelled(&labels, value)
    };
    let values = checks
        .iter()
        .filter_map(|c| Some(gate(c, c.value?)))
        .collect();
    let help = "What a health gate measures now (increase, rate per second, ratio or level, per its limit), from one evaluation; absent when the counter is missing.";
    m.gauge("sysprof_health_gate_value", help, values);
    let limits = checks.iter().map(|c| gate(c, c.gate.threshold)).collect();
    m.gauge(
        "sysprof_health_gate_threshold",
        "A health gate's limit.",
        limits,
    );
    let tripped = checks
        .iter()
        .map(|c| gate(c, flag(c.status == GateStatus::Tripped)));
    let help = "1 when a health gate is over its limit.";
    m.gauge("sysprof_health_gate_tripped", help, tripped.collect());
    let missing = checks
        .iter()
        .map(|c| gate(c, flag(c.status == GateStatus::Missing)));
    let help = "1 when a health gate's counter is not on this kernel or in this namespace.";
    m.gauge("sysprof_health_gate_missing", help, missing.collect());
}

/// The Prometheus text exposition of `families` (format 0.0.4), newline-terminated.
pub fn exposition(families: &[Family]) -> String {
    let mut text = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        text.push_str(&format!("# HELP {} {}\n", f.name, escape_help(f.help)));
        text.push_str(&format!("# TYPE {} gauge\n", f.name));
        for s in &f.samples {
            text.push_str(f.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                text.push_str(&format!("{{{}}}", labels.join(",")));
            }
            text.push_str(&format!(" {}\n", number(s.value)));
        }
    }
    text
}

/// A `# HELP` text: backslash and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and newline escaped.
fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`; integers without `.0`).
fn number(v: f64) -> String {
    match v {
        _ if v.is_nan() => "NaN".into(),
        _ if v.is_infinite() && v > 0.0 => "+Inf".into(),
        _ if v.is_infinite() => "-Inf".into(),
        _ => format!("{v}"),
    }
}

/// Writes `DIR/sysprof.prom` through a temp file in DIR and a rename (node_exporter never reads
/// a half-written file; the temp name does not end in `.prom`), world-readable for the
/// exporter's user. Returns the file's path.
pub fn write_textfile(dir: &Path, text: &str) -> Result<PathBuf> {
    store::write_atomic_mode(dir, TEXTFILE, text.as_bytes(), 0o644)?;
    Ok(dir.join(TEXTFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_and_skips_empty_families() {
        let families = [
            Family {
                name: "sysprof_x",
                help: "a \\ b\nc",
                samples: vec![Sample::labelled(&[("p", "we\"ird\\na\nme")], 1.5)],
            },
            Family {
                name: "sysprof_empty",
                help: "never shown",
                samples: Vec::new(),
            },
            Family {
                name: "sysprof_y",
                help: "y",
                samples: vec![Sample::plain(f64::INFINITY), Sample::plain(3.0)],
            },
        ];
        let text = exposition(&families);
        let expected = "# HELP sysprof_x a \\\\ b\\nc\n# TYPE sysprof_x gauge\n\
                        sysprof_x{p=\"we\\\"ird\\\\na\\nme\"} 1.5\n\
                        # HELP sysprof_y y\n# TYPE sysprof_y gauge\nsysprof_y +Inf\nsysprof_y 3\n";
        assert_eq!(text, expected);
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(-f64::INFINITY), "-Inf");
        assert_eq!(number(1_764_355_200.0), "1764355200");
        assert_eq!(number(0.25), "0.25");
    }
}
