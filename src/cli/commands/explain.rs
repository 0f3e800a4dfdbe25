//! `sysprof explain KEY|RULE`: everything the schema knows, with the current value.

use crate::adopt::manifests;
use crate::cli::output::Output;
use crate::cli::render::report;
use crate::cli::settings::Settings;

use crate::error::{Error, Result, exit, shorten};
use crate::profile::key::SysctlKey;
use crate::schema::rules::CODE_RULES;

/// Explains a key (with its live value when readable) or a rule.
pub fn run(s: &Settings, name: &str, out: &mut Output) -> Result<i32> {
    let schema = s.schema()?;
    if let Some(rule) = schema.rules.iter().find(|r| r.id == name) {
        return emit(out, serde_json::to_value(rule).expect("rule serialises"));
    }
    if let Some(rule) = CODE_RULES
        .iter()
        .chain(manifests::RULES)
        .chain(crate::adopt::import::RULES)
        .find(|r| r.id == name)
    {
        let value = serde_json::json!({ "id": rule.id, "severity": rule.severity, "kind": "code", "summary": rule.summary, "sources": rule.sources });
        return emit(out, value);
    }
    let Some(spec) = schema.lookup_text(name) else {
        let suggestion = SysctlKey::parse(name).ok().and_then(|k| schema.suggest(&k));
        let help = suggestion
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "give a sysctl key or a rule id".into());
        return Err(Error::Input {
            message: format!("{:?} is neither a known key nor a rule", shorten(name)),
            help: Some(help),
        });
    };
    let mut value = serde_json::to_value(spec).expect("spec serialises");
    let current = SysctlKey::parse(name)
        .ok()
        .and_then(|key| s.tree().ok()?.read(&key).ok());
    value["current"] = current.map(|v| v.to_string()).into();
    let (origin, from) = report::origin_and_where(spec);
    value["origin"] = format!("{origin} {from}").into();
    value["default_on_target"] = spec
        .default_for(s.target().kernel)
        .map(|v| v.to_string())
        .into();
    emit(out, value)
}

fn emit(out: &mut Output, value: serde_json::Value) -> Result<i32> {
    match out.json() {
        true => out.emit(&value)?,
        false => out.block(|w| report::fields(w, &value))?,
    }
    Ok(exit::OK)
}
