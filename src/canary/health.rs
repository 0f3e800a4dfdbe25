//! Health gates: thresholds on kernel counters that decide whether a change may stay.
//!
//! A profile's `health` section (plus `--gate` flags) names [`Gate`]s. Each gate watches one
//! counter (see `sample` for the names and where they come from) against one limit:
//!
//! - `max_increase: N`: the counter may rise by at most N over the baseline;
//! - `max_rate: N`: at most N per second between two consecutive samples;
//! - `max_ratio: R`: a ratio gauge (`conntrack.fill`, `ports.ephemeral_use`) may reach at most R,
//!   or, with `of: OTHER`, the counter's increase divided by OTHER's increase;
//! - `max: N`: the counter's current level may be at most N.
//!
//! [`evaluate`] judges samples; [`watch`] samples a window and stops at the first tripped gate.
//! A counter this kernel does not have is reported as [`GateStatus::Missing`], never an error.
//! This module measures and judges; applying, rolling back and printing are the callers' job.

use std::time::Duration;

use serde::Serialize;

use crate::profile::section;

use crate::canary::sample;
pub use crate::canary::sample::{Sample, Sources};
pub use crate::profile::health::{Gate, HealthSpec, Limit, check_counter, fmt_num, json_schema};

/// Sampling interval when neither the profile nor the command line sets one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// A gate's state after a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    /// Within its limit.
    Ok,
    /// Over its limit.
    Tripped,
    /// The counter (or its denominator) does not exist here.
    Missing,
}

/// One gate judged against samples.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The gate.
    pub gate: Gate,
    /// Its state.
    pub status: GateStatus,
    /// The measured quantity (increase, rate, ratio or level).
    pub value: Option<f64>,
    /// The counter at the baseline.
    pub baseline: Option<f64>,
    /// The counter now.
    pub current: Option<f64>,
    /// Why it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Check {
    /// `TcpExt.ListenOverflows rose by 37 (0 → 37), limit max_increase 0`.
    pub fn describe(&self) -> String {
        let g = &self.gate;
        let (Some(value), Some(base), Some(now)) = (self.value, self.baseline, self.current) else {
            return format!(
                "{}: missing ({})",
                g.counter,
                self.note.as_deref().unwrap_or("not on this kernel")
            );
        };
        let what = match g.limit {
            Limit::MaxIncrease => format!("rose by {}", fmt_num(value)),
            Limit::MaxRate => format!("rose at {}/s", fmt_num(value)),
            Limit::MaxRatio => format!("ratio {}", fmt_num(value)),
            Limit::Max => format!("is at {}", fmt_num(value)),
        };
        format!(
            "{} {what} ({} → {}), limit {} {}",
            g.counter,
            fmt_num(base),
            fmt_num(now),
            g.limit.name(),
            fmt_num(g.threshold)
        )
    }

    /// A short `counter value/limit` for a live status line.
    pub fn brief(&self) -> String {
        match self.value {
            Some(v) => format!(
                "{} {}≤{}",
                self.gate.counter,
                fmt_num(v),
                fmt_num(self.gate.threshold)
            ),
            None => format!("{} missing", self.gate.counter),
        }
    }
}

/// Judges every gate: increases against `baseline`, rates against `previous`.
pub fn evaluate(
    gates: &[Gate],
    baseline: &Sample,
    previous: &Sample,
    current: &Sample,
) -> Vec<Check> {
    gates
        .iter()
        .map(|g| judge(g, baseline, previous, current))
        .collect()
}

fn judge(gate: &Gate, baseline: &Sample, previous: &Sample, current: &Sample) -> Check {
    let name = gate.counter.as_str();
    let (base, prev, now) = (baseline.get(name), previous.get(name), current.get(name));
    let increase = |from: Option<f64>, to: Option<f64>| Some((to? - from?).max(0.0));
    let value = match gate.limit {
        Limit::MaxIncrease => increase(base, now),
        Limit::Max => now,
        Limit::MaxRate => {
            let secs = current.taken.duration_since(previous.taken).as_secs_f64();
            increase(prev, now).map(|d| if secs > 0.0 { d / secs } else { 0.0 })
        }
        Limit::MaxRatio => match &gate.of {
            None => now,
            Some(of) => {
                let denominator = increase(baseline.get(of), current.get(of));
                increase(base, now)
                    .zip(denominator)
                    .map(|(n, d)| if d > 0.0 { n / d } else { 0.0 })
            }
        },
    };
    let status = match value {
        None => GateStatus::Missing,
        Some(v) if v > gate.threshold => GateStatus::Tripped,
        Some(_) => GateStatus::Ok,
    };
    let note = (status == GateStatus::Missing).then(|| missing_note(gate, current));
    Check {
        gate: gate.clone(),
        status,
        value,
        baseline: base,
        current: now,
        note,
    }
}

fn missing_note(gate: &Gate, current: &Sample) -> String {
    let absent = match &gate.of {
        Some(of) if current.get(of).is_none() && current.get(&gate.counter).is_some() => of,
        _ => &gate.counter,
    };
    let hint = crate::error::closest(absent, current.values.keys().map(String::as_str))
        .map(|s| format!("; did you mean {s}?"))
        .unwrap_or_default();
    format!("{absent} is not on this kernel or in this namespace{hint}")
}

/// Where a watch stands, for live display.
pub struct Progress<'a> {
    /// Time since the baseline.
    pub elapsed: Duration,
    /// Time left in the window.
    pub remaining: Duration,
    /// The latest judgement.
    pub checks: &'a [Check],
}

/// How a watched window ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// No gate tripped for the whole window.
    Healthy {
        /// The last judgement.
        checks: Vec<Check>,
        /// Samples taken after the baseline.
        samples: usize,
    },
    /// A gate tripped.
    Tripped {
        /// The judgement that tripped (every gate, tripped ones included).
        checks: Vec<Check>,
        /// Seconds into the window.
        #[serde(serialize_with = "section::secs")]
        after: Duration,
    },
}

impl Verdict {
    /// The tripped checks (empty when healthy).
    pub fn tripped(&self) -> Vec<&Check> {
        match self {
            Self::Healthy { .. } => Vec::new(),
            Self::Tripped { checks, .. } => checks
                .iter()
                .filter(|c| c.status == GateStatus::Tripped)
                .collect(),
        }
    }
}

/// Samples a baseline, then every `interval` until `window` has passed or a gate trips.
pub fn watch(
    src: &Sources,
    gates: &[Gate],
    window: Duration,
    interval: Duration,
    observe: &mut dyn FnMut(&Progress),
) -> Verdict {
    let baseline = sample::sample(src);
    let start = baseline.taken;
    let mut previous = baseline.clone();
    let mut samples = 0;
    loop {
        let elapsed = src.env.monotonic().duration_since(start);
        let remaining = window.saturating_sub(elapsed);
        src.env
            .sleep(interval.min(remaining).max(Duration::from_millis(10)));
        let current = sample::sample(src);
        samples += 1;
        let checks = evaluate(gates, &baseline, &previous, &current);
        let elapsed = current.taken.duration_since(start);
        observe(&Progress {
            elapsed,
            remaining: window.saturating_sub(elapsed),
            checks: &checks,
        });
        if checks.iter().any(|c| c.status == GateStatus::Tripped) {
            return Verdict::Tripped {
                checks,
                after: elapsed,
            };
        }
        if elapsed >= window {
            return Verdict::Healthy { checks, samples };
        }
        previous = current;
    }
}

/// Checks the gates once: two samples `over` apart (increases and rates need a span).
pub fn check_once(src: &Sources, gates: &[Gate], over: Duration) -> (Vec<Check>, Sample) {
    // The socket census is the costly part of a sample on a busy host: the first sample needs
    // it only when a socket or port gate compares with a baseline.
    let census = |name: &str| name.starts_with("sockets.") || name.starts_with("ports.");
    let baseline_sockets = gates.iter().any(|g| {
        let relative = matches!(g.limit, Limit::MaxIncrease | Limit::MaxRate) || g.of.is_some();
        relative && (census(&g.counter) || g.of.as_deref().is_some_and(census))
    });
    let first = sample::sample_with(src, baseline_sockets);
    src.env.sleep(over);
    let second = sample::sample(src);
    (evaluate(gates, &first, &first, &second), second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn at(secs: u64, base: Instant, values: &[(&str, f64)]) -> Sample {
        Sample {
            taken: base + Duration::from_secs(secs),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            unavailable: Vec::new(),
        }
    }

    fn gate(flag: &str) -> Gate {
        Gate::parse_flag(flag).unwrap()
    }

    #[test]
    fn each_limit_kind_trips_on_its_own_measure() {
        let t = Instant::now();
        let base = at(
            0,
            t,
            &[
                ("TcpExt.ListenOverflows", 5.0),
                ("Tcp.RetransSegs", 10.0),
                ("Tcp.OutSegs", 1000.0),
                ("conntrack.fill", 0.5),
            ],
        );
        let prev = at(
            10,
            t,
            &[
                ("TcpExt.ListenOverflows", 5.0),
                ("Tcp.RetransSegs", 10.0),
                ("Tcp.OutSegs", 1000.0),
                ("conntrack.fill", 0.5),
            ],
        );
        let now = at(
            12,
            t,
            &[
                ("TcpExt.ListenOverflows", 9.0),
                ("Tcp.RetransSegs", 60.0),
                ("Tcp.OutSegs", 2000.0),
                ("conntrack.fill", 0.95),
            ],
        );
        let cases = [
            (
                "TcpExt.ListenOverflows:max_increase=3",
                4.0,
                GateStatus::Tripped,
            ),
            ("TcpExt.ListenOverflows:max_increase=4", 4.0, GateStatus::Ok),
            (
                "TcpExt.ListenOverflows:max_rate=1",
                2.0,
                GateStatus::Tripped,
            ),
            ("TcpExt.ListenOverflows:max=9", 9.0, GateStatus::Ok),
            (
                "Tcp.RetransSegs:max_ratio=0.02:of=Tcp.OutSegs",
                0.05,
                GateStatus::Tripped,
            ),
            ("conntrack.fill:max_ratio=0.9", 0.95, GateStatus::Tripped),
        ];
        for (flag, value, status) in cases {
            let check = &evaluate(&[gate(flag)], &base, &prev, &now)[0];
            assert_eq!((check.value, check.status), (Some(value), status), "{flag}");
        }
    }

    #[test]
    fn missing_counters_are_reported_not_fatal() {
        let t = Instant::now();
        let s = at(0, t, &[("TcpExt.PAWSEstab", 1.0)]);
        let check = &evaluate(&[gate("TcpExt.PAWSEstb:max_increase=0")], &s, &s, &s)[0];
        assert_eq!(check.status, GateStatus::Missing);
        assert!(
            check
                .note
                .as_deref()
                .unwrap()
                .contains("did you mean TcpExt.PAWSEstab")
        );
        assert!(check.describe().contains("missing"));
    }

    #[test]
    fn numbers_print_without_noise() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.05), "0.05");
        assert_eq!(fmt_num(1.0 / 3.0), "0.3333");
    }
}
