//! Reports of the read-only commands: `status`, `schema`, `explain`, `health` and
//! `rollout plan`, as human text.

use std::io::{self, Write};

use anstyle::Style;
use serde_json::Value as Json;

use crate::canary::cohort::RolloutPlan;
use crate::canary::health::{Check, GateStatus};
use crate::cli::render::{self, BOLD};
use crate::profile::health::fmt_num;
use crate::schema::{KeySpec, Version};

fn head(cols: &[&str]) -> Vec<(String, Style)> {
    cols.iter().map(|c| (c.to_string(), BOLD)).collect()
}

fn plain(text: impl Into<String>) -> (String, Style) {
    (text.into(), Style::new())
}

/// Key entries of the catalogue as a table (`keys` of `total`).
pub fn schema_table(
    w: &mut dyn Write,
    keys: &[&KeySpec],
    total: usize,
    kernel: Version,
) -> io::Result<()> {
    let mut rows = vec![head(&[
        "KEY", "SHAPE", "DEFAULT", "SCOPE", "ORIGIN", "CAVEAT",
    ])];
    for spec in keys {
        let default = spec
            .default_for(kernel)
            .map_or("-".into(), |v| v.to_string());
        rows.push(vec![
            plain(spec.key),
            plain(format!("{:?}", spec.shape).to_lowercase()),
            plain(default),
            plain(spec.scope.name().to_owned()),
            plain(origin(spec)),
            plain(spec.caveat.chars().take(60).collect::<String>()),
        ]);
    }
    render::table(w, &rows)?;
    writeln!(
        w,
        "\n{} of {total} key entries; `sysprof explain KEY` for everything about one",
        keys.len()
    )
}

/// `curated` (schema/keys.yaml, hand-written with rules and seeds) or `generated` (from the
/// kernel's tables and docs, schema/catalogue.yaml).
pub fn origin(spec: &KeySpec) -> &'static str {
    origin_and_where(spec).0
}

/// [`origin`] with where the entry comes from, as `explain` says it.
pub fn origin_and_where(spec: &KeySpec) -> (&'static str, &'static str) {
    match spec.generated {
        true => (
            "generated",
            "from the kernel's own tables and documentation (schema/catalogue.yaml)",
        ),
        false => (
            "curated",
            "by hand, with its rules and sources (schema/keys.yaml)",
        ),
    }
}

/// The fields `explain` shows, in order, with the label a person reads (a field not listed
/// comes after them under its own name).
const FIELD_LABELS: &[(&str, &str)] = &[
    ("key", "key"),
    ("origin", "entry"),
    ("id", "rule"),
    ("severity", "severity"),
    ("kind", "kind"),
    ("current", "current value"),
    ("default_on_target", "default here"),
    ("default", "default"),
    ("default_note", "about the default"),
    ("older_defaults", "older defaults"),
    ("shape", "type"),
    ("len", "elements"),
    ("values", "values"),
    ("unit", "unit"),
    ("hz", "stored as"),
    ("kernel_bounds", "kernel accepts"),
    ("older_bounds", "older kernels accepted"),
    ("recommended", "recommended"),
    ("read_only", "read-only"),
    ("trigger", "trigger"),
    ("one_way", "one-way"),
    ("scope", "scope"),
    ("older_scopes", "older scopes"),
    ("instance_scopes", "instance scopes"),
    ("ro_in_child_since", "read-only in a child netns since"),
    ("namespaced_since", "per network namespace since"),
    ("k8s", "kubernetes"),
    ("kernels", "kernels seen"),
    ("added", "added in"),
    ("removed", "removed in"),
    ("noop_since", "no effect since"),
    ("replacement", "use instead"),
    ("changes", "changes"),
    ("caveat", "caveat"),
    ("contradicts", "contradicts"),
    ("summary", "what it checks"),
    ("message", "message"),
    ("help", "help"),
    ("when", "fires when"),
    ("sources", "sources"),
    ("handler", "kernel handler"),
];

/// Everything known about a key or rule, one field per line under a label a person reads,
/// in the order an operator looks for them; nested values as prose, never JSON.
pub fn fields(w: &mut dyn Write, value: &Json) -> io::Result<()> {
    let Json::Object(map) = value else {
        return Ok(());
    };
    let rank = |field: &str| {
        FIELD_LABELS
            .iter()
            .position(|(f, _)| *f == field)
            .unwrap_or(FIELD_LABELS.len())
    };
    let mut shown: Vec<(&String, &Json)> = map
        .iter()
        .filter(|(field, v)| !is_empty(v) && field.as_str() != "generated")
        .collect();
    shown.sort_by_key(|(field, _)| rank(field));
    let labels: Vec<String> = shown.iter().map(|(f, _)| label(f)).collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for ((field, v), label) in shown.iter().zip(&labels) {
        writeln!(w, "{label:>width$}: {}", field_text(field, v))?;
    }
    Ok(())
}

fn label(field: &str) -> String {
    match FIELD_LABELS.iter().find(|(f, _)| *f == field) {
        Some((_, label)) => (*label).to_owned(),
        None => field.replace('_', " "),
    }
}

fn is_empty(v: &Json) -> bool {
    match v {
        Json::Null | Json::Bool(false) => true,
        Json::Array(items) => items.is_empty(),
        Json::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// One field's value as prose, by what the field holds.
fn field_text(field: &str, v: &Json) -> String {
    let each = |f: fn(&Json) -> String| match v {
        Json::Array(items) => items.iter().map(f).collect::<Vec<_>>().join("; "),
        other => f(other),
    };
    match field {
        "kernel_bounds" | "recommended" => bounds(v),
        "older_defaults" => {
            each(|d| format!("{} before {}", text(&d["value"]), text(&d["before"])))
        }
        "older_bounds" => each(|b| format!("{} before {}", bounds(b), text(&b["before"]))),
        "older_scopes" => each(|s| format!("{} before {}", text(&s["scope"]), text(&s["before"]))),
        "changes" => each(|c| format!("{}: {}", text(&c["since"]), text(&c["note"]))),
        "values" | "instance_scopes" => pairs(v, " = "),
        "k8s" => kubernetes(v),
        "one_way" => text(&v["note"]),
        "when" => match v {
            Json::Array(items) => items
                .iter()
                .map(condition)
                .collect::<Vec<_>>()
                .join(" and "),
            other => condition(other),
        },
        "read_only" | "trigger" => "yes".into(),
        "kernels" => each(text).replace("; ", ", "),
        _ => text(v),
    }
}

/// `0 to 2`, `at least 128`, `at most 2`, `unchecked`.
fn bounds(v: &Json) -> String {
    match (
        v.get("min").filter(|m| !m.is_null()),
        v.get("max").filter(|m| !m.is_null()),
    ) {
        (Some(min), Some(max)) => format!("{} to {}", text(min), text(max)),
        (Some(min), None) => format!("at least {}", text(min)),
        (None, Some(max)) => format!("at most {}", text(max)),
        (None, None) => "unchecked".into(),
    }
}

/// `0 = disabled, 1 = …` for a map.
fn pairs(v: &Json, sep: &str) -> String {
    match v {
        Json::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}{sep}{}", text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => text(other),
    }
}

/// `safe (allowed by default since Kubernetes 1.29, on kernels from 4.5)`.
fn kubernetes(v: &Json) -> String {
    let mut out = text(&v["class"]);
    let since = v.get("since").filter(|s| !s.is_null());
    let kernel = v.get("min_kernel").filter(|s| !s.is_null());
    let mut notes = Vec::new();
    if let Some(since) = since {
        notes.push(format!("in the kubelet's safe list since {}", text(since)));
    }
    if let Some(kernel) = kernel {
        notes.push(format!("needs kernel {} or later", text(kernel)));
    }
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join(", ")));
    }
    out
}

/// A data rule's condition as an expression: `net.ipv4.tcp_timestamps != 0`,
/// `kernel < 4.12`, `context nat is true`, `net.ipv4.x is set`.
fn condition(c: &Json) -> String {
    let op = |o: &Json| match o.as_str().unwrap_or_default() {
        "eq" => "==",
        "ne" => "!=",
        "lt" => "<",
        "le" => "<=",
        "gt" => ">",
        "ge" => ">=",
        _ => "?",
    };
    let element = |key: &Json, index: &Json| match index.as_u64() {
        Some(i) => format!("{}[{i}]", text(key)),
        None => text(key),
    };
    if let Some(set) = c.get("set") {
        format!("{} is set", text(set))
    } else if let Some(unset) = c.get("unset") {
        format!("{} is not set", text(unset))
    } else if let Some(context) = c.get("context") {
        format!("context {} is {}", text(context), text(&c["is"]))
    } else if let Some(req) = c.get("kernel").or_else(|| c.get("k8s")) {
        let what = if c.get("kernel").is_some() {
            "kernel"
        } else {
            "kubernetes"
        };
        format!("{what} {} {}", op(&req["op"]), text(&req["version"]))
    } else if let Some(key) = c.get("key") {
        let other = match c.get("other").filter(|o| !o.is_null()) {
            Some(other) => element(other, &c["other_index"]),
            None => text(&c["value"]),
        };
        format!("{} {} {other}", element(key, &c["index"]), op(&c["op"]))
    } else {
        text(c)
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
