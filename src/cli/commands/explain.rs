//! `sysprof explain KEY|RULE`: everything the schema knows, with the current value.

use crate::cli::output::{Output, stdout_err};
use crate::cli::settings::Settings;

use crate::error::Location;
use crate::error::{Error, Result, exit};
use crate::profile::key::SysctlKey;
use crate::schema::rules::CODE_RULES;

/// Explains a key (with its live value when readable) or a rule.
pub fn run(s: &Settings, name: &str, out: &mut Output) -> Result<i32> {
    let schema = s.schema()?;
    if let Some(rule) = schema.rules.iter().find(|r| r.id == name) {
        return emit(out, serde_json::to_value(rule).expect("rule serialises"));
    }
    if let Some(rule) = CODE_RULES.iter().find(|r| r.id == name) {
        let value = serde_json::json!({ "id": rule.id, "severity": rule.severity, "kind": "code", "summary": rule.summary, "sources": rule.sources });
        return emit(out, value);
    }
    let Some(spec) = schema.lookup_text(name) else {
        let suggestion = SysctlKey::parse(name).ok().and_then(|k| schema.suggest(&k));
        let help = suggestion
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "give a sysctl key or a rule id".into());
        return Err(Error::Profile {
            at: Location::start("<command line>"),
            message: format!("{name:?} is neither a known key nor a rule"),
            help: Some(help),
            snippet: None,
        });
    };
    let mut value = serde_json::to_value(spec).expect("spec serialises");
    let current = SysctlKey::parse(name)
        .ok()
        .and_then(|key| s.tree().ok()?.read(&key).ok());
    value["current"] = current.map(|v| v.to_string()).into();
    value["default_on_target"] = spec
        .default_for(s.target().kernel)
        .map(|v| v.to_string())
        .into();
    emit(out, value)
}

fn emit(out: &mut Output, value: serde_json::Value) -> Result<i32> {
    if out.json() {
        out.emit(&value)?;
        return Ok(exit::OK);
    }
    let serde_json::Value::Object(map) = value else {
        return Ok(exit::OK);
    };
    // What an operator looks for first, then everything else alphabetically.
    const FIRST: &[&str] = &[
        "key",
        "id",
        "current",
        "default_on_target",
        "caveat",
        "message",
    ];
    let rank = |field: &str| {
        FIRST
            .iter()
            .position(|f| *f == field)
            .unwrap_or(FIRST.len())
    };
    let mut fields: Vec<(&String, &serde_json::Value)> = map
        .iter()
        .filter(|(_, v)| {
            !v.is_null() && *v != &serde_json::json!([]) && *v != &serde_json::json!({})
        })
        .collect();
    fields.sort_by_key(|(field, _)| rank(field));
    for (field, v) in fields {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) if items.iter().all(|i| i.is_string()) => {
                let items: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
                items.join("; ")
            }
            other => other.to_string(),
        };
        writeln!(out.out, "{field:>18}: {text}").map_err(stdout_err)?;
    }
    Ok(exit::OK)
}
