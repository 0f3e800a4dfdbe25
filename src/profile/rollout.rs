//! A profile's `rollout` section: the stages of a staged rollout, parsed and checked.
//!
//! ```yaml
//! rollout:
//!   stages:
//!     - {name: canary, percent: 1, watch: 10m}
//!     - {name: early, percent: 10, watch: 30m}
//!     - {name: fleet, percent: 100, watch: 10m}
//! ```
//!
//! Percents are cumulative and never decrease. Which hosts fall in which stage is
//! `canary::cohort`'s business; this module only reads the declaration.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Location, Result};
use crate::profile::section;
use crate::profile::yaml::Node;

const SECTION_FIELDS: &[&str] = &["stages"];
const STAGE_FIELDS: &[&str] = &["name", "percent", "watch"];

/// One stage of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// Its name (`canary`, `early`, `fleet`…).
    pub name: String,
    /// Share of the fleet in this stage, cumulative (0 < percent ≤ 100).
    pub percent: f64,
    /// How long `apply --stage` watches the health gates here.
    #[serde(serialize_with = "section::opt_secs")]
    pub watch: Option<Duration>,
    /// Where the profile declares it.
    pub at: Location,
}

/// A profile's `rollout` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RolloutSpec {
    /// Stages in order, percents non-decreasing.
    pub stages: Vec<Stage>,
}

impl RolloutSpec {
    /// Parses the `rollout:` node of one profile file.
    pub fn parse(node: &Node, file: &Arc<str>) -> Result<Self> {
        let mut spec = RolloutSpec::default();
        for (key, value) in section::mapping(node, file, "rollout")? {
            if key.as_scalar() != Some("stages") {
                return Err(section::unknown(file, key, "rollout field", SECTION_FIELDS));
            }
            for item in section::sequence(value, file, "stages")? {
                let stage = parse_stage(item, file)?;
                check_order(&spec.stages, &stage, item, file)?;
                spec.stages.push(stage);
            }
            if spec.stages.is_empty() {
                return Err(section::error(
                    file,
                    value,
                    "`stages` is empty".into(),
                    None,
                ));
            }
        }
        Ok(spec)
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Result<&Stage> {
        self.stages.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
            let hint = crate::error::closest(name, names.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            Error::Profile {
                at: self
                    .stages
                    .first()
                    .map(|s| s.at.clone())
                    .unwrap_or_else(unknown_place),
                message: format!("the rollout has no stage `{name}`"),
                help: Some(format!("{hint}stages: {}", names.join(", "))),
                snippet: None,
            }
        })
    }

    /// The first stage a cohort falls in (None: beyond the last stage's percent).
    pub fn first_stage(&self, cohort: f64) -> Option<&Stage> {
        self.stages.iter().find(|s| cohort < s.percent)
    }
}

fn unknown_place() -> Location {
    Location {
        file: "profile".into(),
        line: 1,
        col: 1,
    }
}

fn parse_stage(node: &Node, file: &Arc<str>) -> Result<Stage> {
    let (mut name, mut percent, mut watch) = (None, None, None);
    for (key, value) in section::mapping(node, file, "stage")? {
        match key.as_scalar().unwrap_or_default() {
            "name" => name = Some(section::text(value, file, "name")?),
            "percent" => {
                let p = section::number(value, file, "percent")?;
                if p <= 0.0 || p > 100.0 {
                    let message = format!("`percent` must be above 0 and at most 100, not {p}");
                    return Err(section::error(file, value, message, None));
                }
                percent = Some(p);
            }
            "watch" => watch = Some(section::duration(value, file, "watch")?),
            _ => return Err(section::unknown(file, key, "stage field", STAGE_FIELDS)),
        }
    }
    let need = |what: &str| section::error(file, node, format!("a stage needs `{what}`"), None);
    Ok(Stage {
        name: name.ok_or_else(|| need("name"))?,
        percent: percent.ok_or_else(|| need("percent"))?,
        watch,
        at: section::at(file, node),
    })
}

fn check_order(earlier: &[Stage], stage: &Stage, node: &Node, file: &Arc<str>) -> Result<()> {
    if let Some(dup) = earlier.iter().find(|s| s.name == stage.name) {
        let message = format!(
            "stage `{}` is listed twice (also at line {})",
            stage.name, dup.at.line
        );
        return Err(section::error(file, node, message, None));
    }
    if let Some(prev) = earlier.last().filter(|p| p.percent > stage.percent) {
        let message = format!(
            "stage `{}` covers {}% but the earlier stage `{}` covers {}%",
            stage.name, stage.percent, prev.name, prev.percent
        );
        let help = "percents are cumulative and never decrease, so a host in an early stage stays in every later one";
        return Err(section::error(file, node, message, Some(help)));
    }
    Ok(())
}

/// The `rollout` section as JSON Schema (draft-07), for `json_schema`.
pub fn json_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "description": "Stages of a staged rollout; hosts place themselves by sha256(fingerprint + host id).",
        "additionalProperties": false,
        "properties": {
            "stages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "percent"],
                    "properties": {
                        "name": {"type": "string"},
                        "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "description": "Cumulative share of the fleet; never decreases."},
                        "watch": {"type": ["string", "integer"], "description": "How long `apply --stage` watches the gates, e.g. 10m."}
                    }
                }
            }
        }
    })
}
