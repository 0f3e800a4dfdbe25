//! Reports of the read-only commands: `status`, `schema`, `explain`, `health` and
//! `rollout plan`, as human text.

use std::io::{self, Write};

use anstyle::Style;
use serde_json::Value as Json;

use crate::canary::cohort::RolloutPlan;
use crate::canary::health::{Check, GateStatus};
use crate::cli::render::{self, BOLD};
use crate::profile::health::fmt_num;
use crate::schema::{Schema, Version};

fn head(cols: &[&str]) -> Vec<(String, Style)> {
    cols.iter().map(|c| (c.to_string(), BOLD)).collect()
}

fn plain(text: impl Into<String>) -> (String, Style) {
    (text.into(), Style::new())
}

/// The key catalogue as a table.
pub fn schema_table(w: &mut dyn Write, schema: &Schema, kernel: Version) -> io::Result<()> {
    let mut rows = vec![head(&["KEY", "SHAPE", "DEFAULT", "SCOPE", "CAVEAT"])];
    for spec in schema.keys {
        let default = spec
            .default_for(kernel)
            .map_or("-".into(), |v| v.to_string());
        rows.push(vec![
            plain(spec.key),
            plain(format!("{:?}", spec.shape).to_lowercase()),
            plain(default),
            plain(format!("{:?}", spec.scope).to_lowercase()),
            plain(spec.caveat.chars().take(60).collect::<String>()),
        ]);
    }
    render::table(w, &rows)?;
    writeln!(
        w,
        "\n{} key entries, {} data rules; `sysprof explain KEY` for everything about one",
        schema.keys.len(),
        schema.rules.len()
    )
}

/// Everything known about a key or rule, one field per line, the fields an operator looks for
/// first; nested values as text, not JSON.
pub fn fields(w: &mut dyn Write, value: &Json) -> io::Result<()> {
    const FIRST: &[&str] = &[
        "key",
        "id",
        "current",
        "default_on_target",
        "caveat",
        "message",
    ];
    let Json::Object(map) = value else {
        return Ok(());
    };
    let rank = |field: &str| {
        FIRST
            .iter()
            .position(|f| *f == field)
            .unwrap_or(FIRST.len())
    };
    let mut shown: Vec<(&String, &Json)> = map.iter().filter(|(_, v)| !is_empty(v)).collect();
    shown.sort_by_key(|(field, _)| rank(field));
    for (field, v) in shown {
        writeln!(w, "{field:>18}: {}", text(v))?;
    }
    Ok(())
}

fn is_empty(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::Array(items) => items.is_empty(),
        Json::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// A JSON value as prose: strings bare, lists joined with `; `, objects as `field value, …`.
fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(items) => items.iter().map(text).collect::<Vec<_>>().join("; "),
        Json::Object(map) => map
            .iter()
            .filter(|(_, v)| !is_empty(v))
            .map(|(k, v)| format!("{} {}", k.replace('_', " "), text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// One line per gate, then the verdict.
pub fn gate_checks(w: &mut dyn Write, name: &str, checks: &[Check], over: &str) -> io::Result<()> {
    for check in checks {
        let mark = match check.status {
            GateStatus::Ok => "ok     ",
            GateStatus::Tripped => "TRIPPED",
            GateStatus::Missing => "missing",
        };
        writeln!(w, "{mark}  {}", check.describe())?;
    }
    let tripped = checks.iter().any(|c| c.status == GateStatus::Tripped);
    let verdict = if tripped { "TRIPPED" } else { "healthy" };
    let summary = format!("{name}: {} gate(s) over {over}: {verdict}", checks.len());
    match tripped {
        true => writeln!(w, "{summary}"),
        false => render::ok(w, &summary),
    }
}

/// Stages, then hosts, of a rollout plan.
pub fn rollout_plan(w: &mut dyn Write, name: &str, plan: &RolloutPlan) -> io::Result<()> {
    let mut rows = vec![head(&["STAGE", "PERCENT", "WATCH", "HOSTS", "NEW HOSTS"])];
    for s in &plan.stages {
        let watch = s
            .watch
            .map_or("-".into(), |w| humantime::format_duration(w).to_string());
        rows.push(vec![
            plain(s.name.clone()),
            plain(format!("{}%", fmt_num(s.percent))),
            plain(watch),
            plain(s.total.to_string()),
            plain(s.new_hosts.join(" ")),
        ]);
    }
    let fingerprint = &plan.fingerprint[..12];
    writeln!(
        w,
        "rollout of {name} ({fingerprint}), {} host(s):",
        plan.hosts.len()
    )?;
    render::table(w, &rows)?;
    writeln!(w)?;
    let mut rows = vec![head(&["HOST", "HOST ID", "COHORT", "FIRST STAGE"])];
    for h in &plan.hosts {
        rows.push(vec![
            plain(h.host.clone()),
            plain(h.host_id.clone()),
            plain(format!("{:.2}", h.cohort)),
            plain(h.stage.clone().unwrap_or_else(|| "(none)".into())),
        ]);
    }
    render::table(w, &rows)
}
