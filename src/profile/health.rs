//! Gate definitions: what a `health` section and a `--gate` flag may say, parsed and checked.
//!
//! A gate is one limit on one counter (`max_increase`, `max_rate`, `max_ratio` with an optional
//! `of` denominator, `max`). Counter names are `Family.Field`: the family must be known (a kernel
//! MIB table, or one of the counters `sample` derives) and derived families must name a field
//! they have; kernel fields vary by version, so they are judged when sampled, not here.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::profile::Location;
use crate::profile::section;
use crate::profile::yaml::Node;

/// Counter families read from the kernel's MIB tables (`/proc/net/netstat`, `snmp`, conntrack).
/// Counter families computed by sysprof rather than read from a kernel MIB table.
pub const DERIVED_FAMILIES: &[(&str, &[&str])] = &[
    ("conntrack", &["count", "max", "fill"]),
    ("sockets", TCP_STATES),
    (
        "ports",
        &["ephemeral_used", "ephemeral_total", "ephemeral_use"],
    ),
];

/// Counters whose value is already a ratio in [0, 1] (`max_ratio` needs no `of:` for them).
pub const RATIO_COUNTERS: &[&str] = &["conntrack.fill", "ports.ephemeral_use"];

/// TCP states in the order of [`TcpState`] (the kernel's codes 0x01…0x0C).
pub const TCP_STATES: &[&str] = &[
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

/// Numbers without a trailing `.0`, ratios with up to 4 decimals.
pub fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        let s = format!("{n:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

const MIB_FAMILIES: &[&str] = &[
    "TcpExt",
    "IpExt",
    "MPTcpExt",
    "TlsExt",
    "Ip",
    "Icmp",
    "IcmpMsg",
    "Tcp",
    "Udp",
    "UdpLite",
    "nf_conntrack",
];

const SECTION_FIELDS: &[&str] = &["interval", "gates"];
const GATE_FIELDS: &[&str] = &[
    "max_increase",
    "max_rate",
    "max_ratio",
    "max",
    "of",
    "reason",
];

/// What a gate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Increase over the baseline.
    MaxIncrease,
    /// Increase per second between consecutive samples.
    MaxRate,
    /// A ratio gauge, or increase / increase of `of`.
    MaxRatio,
    /// The current level.
    Max,
}

impl Limit {
    /// The name used in profiles and flags.
    pub fn name(self) -> &'static str {
        match self {
            Self::MaxIncrease => "max_increase",
            Self::MaxRate => "max_rate",
            Self::MaxRatio => "max_ratio",
            Self::Max => "max",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "max_increase" | "increase" => Self::MaxIncrease,
            "max_rate" | "rate" => Self::MaxRate,
            "max_ratio" | "ratio" => Self::MaxRatio,
            "max" => Self::Max,
            _ => return None,
        })
    }
}

/// One threshold on one counter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    /// The counter, e.g. `TcpExt.ListenOverflows`.
    pub counter: String,
    /// What is limited.
    pub limit: Limit,
    /// The largest healthy value.
    pub threshold: f64,
    /// For `max_ratio` on a plain counter: the denominator counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// Why the gate exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the profile declares it (None for `--gate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Location>,
}

impl Gate {
    /// `TcpExt.ListenOverflows max_increase 0` (with `of OTHER` for ratios of increases).
    pub fn label(&self) -> String {
        let of = self
            .of
            .as_ref()
            .map(|o| format!(" of {o}"))
            .unwrap_or_default();
        format!(
            "{} {} {}{of}",
            self.counter,
            self.limit.name(),
            fmt_num(self.threshold)
        )
    }

    /// Parses a `--gate` flag: `COUNTER:LIMIT=N[:of=COUNTER]`, e.g.
    /// `TcpExt.ListenOverflows:max_increase=0` or `Tcp.RetransSegs:max_ratio=0.02:of=Tcp.OutSegs`.
    pub fn parse_flag(text: &str) -> std::result::Result<Self, String> {
        let mut parts = text.split(':');
        let counter = parts.next().unwrap_or_default().to_owned();
        check_counter(&counter)
            .map_err(|(m, h)| format!("{m}{}", h.map(|h| format!("; {h}")).unwrap_or_default()))?;
        let (mut limit, mut of) = (None, None);
        for part in parts {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected LIMIT=N or of=COUNTER"))?;
            if name == "of" {
                of = Some(value.to_owned());
                continue;
            }
            let kind = Limit::from_name(name).ok_or_else(|| {
                format!("unknown limit {name:?}: expected max_increase, max_rate, max_ratio or max")
            })?;
            let n: f64 = value
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("{value:?} is not a non-negative number"))?;
            limit = Some((kind, n));
        }
        let (limit, threshold) =
            limit.ok_or("a gate needs a limit, e.g. TcpExt.ListenOverflows:max_increase=0")?;
        let gate = Gate {
            counter,
            limit,
            threshold,
            of,
            reason: None,
            at: None,
        };
        gate.check_ratio().map_err(|(m, _)| m)?;
        Ok(gate)
    }

    fn check_ratio(&self) -> std::result::Result<(), (String, Option<String>)> {
        let ratio_gauge = RATIO_COUNTERS.contains(&self.counter.as_str());
        match (&self.limit, &self.of) {
            (Limit::MaxRatio, None) if !ratio_gauge => Err((
                format!(
                    "{}: `max_ratio` needs `of: COUNTER` unless the counter is a ratio",
                    self.counter
                ),
                Some(format!("ratio counters: {}", RATIO_COUNTERS.join(", "))),
            )),
            (Limit::MaxRatio, Some(of)) => check_counter(of),
            (_, Some(_)) => Err((
                format!("{}: `of` only goes with `max_ratio`", self.counter),
                None,
            )),
            _ => Ok(()),
        }
    }
}

/// Checks a counter name: `Family.Field`, with a known family (and field, for derived ones).
pub fn check_counter(name: &str) -> std::result::Result<(), (String, Option<String>)> {
    let Some((family, field)) = name.split_once('.') else {
        return Err((
            format!("counter {name:?} is not of the form Family.Field"),
            Some("e.g. TcpExt.ListenOverflows, Tcp.AttemptFails, conntrack.fill".into()),
        ));
    };
    let ok_chars =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_chars(family) || !ok_chars(field) {
        return Err((format!("counter {name:?} has an empty or odd part"), None));
    }
    if let Some((_, fields)) = DERIVED_FAMILIES.iter().find(|(f, _)| *f == family) {
        if !fields.contains(&field) {
            let hint = crate::error::closest(field, fields.iter().copied())
                .map(|s| format!("did you mean {family}.{s}? "))
                .unwrap_or_default();
            return Err((
                format!("unknown counter {name:?}"),
                Some(format!("{hint}{family} has: {}", fields.join(", "))),
            ));
        }
        return Ok(());
    }
    if MIB_FAMILIES.contains(&family) {
        return Ok(());
    }
    let all: Vec<&str> = MIB_FAMILIES
        .iter()
        .copied()
        .chain(DERIVED_FAMILIES.iter().map(|(f, _)| *f))
        .collect();
    let hint = crate::error::closest(family, all.iter().copied())
        .map(|s| format!("did you mean {s}? "))
        .unwrap_or_default();
    Err((
        format!("unknown counter family {family:?} in {name:?}"),
        Some(format!("{hint}families: {}", all.join(", "))),
    ))
}

/// A profile's `health` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthSpec {
    /// Sampling interval.
    #[serde(
        serialize_with = "section::opt_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// The gates, in declaration order.
    pub gates: Vec<Gate>,
}

impl HealthSpec {
    /// Merges a later file's section: its gates replace the earlier ones on the same counter.
    pub fn merge(&mut self, later: HealthSpec) {
        self.interval = later.interval.or(self.interval);
        self.gates
            .retain(|g| !later.gates.iter().any(|l| l.counter == g.counter));
        self.gates.extend(later.gates);
    }

    /// Adds command-line gates, replacing the profile's gates on the same counter and limit.
    pub fn with_flags(mut self, flags: &[Gate]) -> Self {
        self.gates.retain(|g| {
            !flags
                .iter()
                .any(|f| f.counter == g.counter && f.limit == g.limit)
        });
        self.gates.extend(flags.iter().cloned());
        self
    }

    /// Parses the `health:` node of one profile file.
    pub fn parse(node: &Node, file: &Arc<str>) -> Result<Self> {
        let mut spec = HealthSpec::default();
        for (key, value) in section::mapping(node, file, "health")? {
            match key.as_scalar().unwrap_or_default() {
                "interval" => spec.interval = Some(section::duration(value, file, "interval")?),
                "gates" => {
                    for (counter, body) in section::mapping(value, file, "gates")? {
                        spec.gates.extend(parse_gate(counter, body, file)?);
                    }
                }
                _ => return Err(section::unknown(file, key, "health field", SECTION_FIELDS)),
            }
        }
        Ok(spec)
    }
}

/// One `gates:` entry; several limits on one counter make several gates.
fn parse_gate(counter: &Node, body: &Node, file: &Arc<str>) -> Result<Vec<Gate>> {
    let name = section::text(counter, file, "counter")?;
    check_counter(&name).map_err(|(m, h)| section::error(file, counter, m, h.as_deref()))?;
    let (mut limits, mut of, mut reason) = (Vec::new(), None, None);
    for (field, value) in section::mapping(body, file, &name)? {
        let f = field.as_scalar().unwrap_or_default();
        match (f, Limit::from_name(f)) {
            ("of", _) => of = Some(section::text(value, file, "of")?),
            ("reason", _) => reason = Some(section::text(value, file, "reason")?),
            (_, Some(limit)) if GATE_FIELDS.contains(&f) => {
                limits.push((limit, section::number(value, file, f)?))
            }
            _ => return Err(section::unknown(file, field, "gate field", GATE_FIELDS)),
        }
    }
    if limits.is_empty() {
        let help = "give max_increase, max_rate, max_ratio or max";
        return Err(section::error(
            file,
            counter,
            format!("gate {name} has no limit"),
            Some(help),
        ));
    }
    let gates: Vec<Gate> = limits
        .into_iter()
        .map(|(limit, threshold)| Gate {
            counter: name.clone(),
            limit,
            threshold,
            of: of.clone().filter(|_| limit == Limit::MaxRatio),
            reason: reason.clone(),
            at: Some(section::at(file, counter)),
        })
        .collect();
    if of.is_some() && !gates.iter().any(|g| g.limit == Limit::MaxRatio) {
        return Err(section::error(
            file,
            counter,
            format!("{name}: `of` only goes with `max_ratio`"),
            None,
        ));
    }
    for gate in &gates {
        gate.check_ratio()
            .map_err(|(m, h)| section::error(file, counter, m, h.as_deref()))?;
    }
    Ok(gates)
}

/// The `health` section as JSON Schema (draft-07), for `json_schema`.
pub fn json_schema() -> serde_json::Value {
    let number = serde_json::json!({"type": "number", "minimum": 0});
    serde_json::json!({
        "type": "object",
        "description": "Health gates on kernel counters, watched by `apply --watch` and checked by `sysprof health`.",
        "additionalProperties": false,
        "properties": {
            "interval": {"type": ["string", "integer"], "description": "Sampling interval, e.g. 1s (default 1s)."},
            "gates": {
                "type": "object",
                "description": "Counter (TcpExt.ListenOverflows, Tcp.AttemptFails, nf_conntrack.drop, conntrack.fill, sockets.TIME_WAIT, ports.ephemeral_use, …) to its limits.",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "max_increase": {"allOf": [number], "description": "Largest rise over the baseline."},
                        "max_rate": {"allOf": [number], "description": "Largest rise per second between samples."},
                        "max_ratio": {"allOf": [number], "description": "Largest ratio (a ratio counter, or increase / increase of `of`)."},
                        "max": {"allOf": [number], "description": "Largest level."},
                        "of": {"type": "string", "description": "Denominator counter for max_ratio."},
                        "reason": {"type": "string"}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(flag: &str) -> Gate {
        Gate::parse_flag(flag).unwrap()
    }

    #[test]
    fn bad_gate_flags_say_why() {
        for (flag, expected) in [
            ("ListenOverflows:max=1", "Family.Field"),
            ("TcpExtt.ListenOverflows:max=1", "did you mean TcpExt"),
            ("sockets.TIMEWAIT:max=1", "did you mean sockets.TIME_WAIT"),
            ("TcpExt.ListenOverflows", "needs a limit"),
            ("TcpExt.ListenOverflows:max_ratio=0.1", "needs `of"),
            ("TcpExt.ListenOverflows:max=-1", "non-negative"),
            ("TcpExt.ListenOverflows:most=1", "unknown limit"),
        ] {
            let err = Gate::parse_flag(flag).unwrap_err();
            assert!(err.contains(expected), "{flag}: {err}");
        }
    }

    #[test]
    fn later_files_replace_gates_on_the_same_counter() {
        let mut base = HealthSpec {
            interval: None,
            gates: vec![
                gate("TcpExt.ListenOverflows:max_increase=0"),
                gate("Tcp.AttemptFails:max_rate=5"),
            ],
        };
        base.merge(HealthSpec {
            interval: Some(Duration::from_secs(2)),
            gates: vec![gate("TcpExt.ListenOverflows:max_rate=1")],
        });
        let labels: Vec<String> = base.gates.iter().map(Gate::label).collect();
        assert_eq!(
            labels,
            [
                "Tcp.AttemptFails max_rate 5",
                "TcpExt.ListenOverflows max_rate 1"
            ]
        );
        let flagged = base.with_flags(&[gate("Tcp.AttemptFails:max_rate=9")]);
        assert_eq!(
            flagged.gates.last().unwrap().label(),
            "Tcp.AttemptFails max_rate 9"
        );
        assert_eq!(flagged.gates.len(), 2);
    }

    #[test]
    fn the_profile_section_parses_with_positions() {
        let file: Arc<str> = "p.yaml".into();
        let text = "gates:\n  TcpExt.ListenOverflows: {max_increase: 0, max_rate: 2, reason: r}\n  conntrack.fill: {max_ratio: 0.9}\ninterval: 500ms\n";
        let node = crate::profile::yaml::parse(text).unwrap().unwrap();
        let spec = HealthSpec::parse(&node, &file).unwrap();
        assert_eq!(spec.gates.len(), 3);
        assert_eq!(spec.interval, Some(Duration::from_millis(500)));
        assert_eq!(spec.gates[0].at.as_ref().unwrap().to_string(), "p.yaml:2:3");
        for (text, expected) in [
            (
                "gates:\n  TcpExt.X: {}\n",
                "p.yaml:2:3: gate TcpExt.X has no limit",
            ),
            (
                "gates:\n  TcpExt.X: {max: 1, maximum: 2}\n",
                "p.yaml:2:22: unknown gate field `maximum`",
            ),
            (
                "gates:\n  Tcp.X: {max_rate: lots}\n",
                "p.yaml:2:21: `max_rate` must be a non-negative number",
            ),
            ("gate: {}\n", "p.yaml:1:1: unknown health field `gate`"),
            (
                "gates:\n  foo.bar: {max: 1}\n",
                "p.yaml:2:3: unknown counter family",
            ),
        ] {
            let node = crate::profile::yaml::parse(text).unwrap().unwrap();
            let err = HealthSpec::parse(&node, &file).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }
}
