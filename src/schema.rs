//! The schema of documented constraints: the key catalogue and data-driven rules.
//!
//! The data lives in `schema/*.yaml` (format in `schema/README.md`), embedded at build time and
//! replaceable with `--schema DIR`. This module owns the types, loading, lookups (exact keys and
//! `*` patterns) and kernel/Kubernetes version parsing. Judging a profile is `validate`'s job.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::key::{KeyPattern, SysctlKey};
use crate::value::Value;

const EMBEDDED_KEYS: &str = include_str!("../schema/keys.yaml");
const EMBEDDED_RULES: &str = include_str!("../schema/rules.yaml");
// The same data as compact JSON, converted by build.rs: deserialising it is ~10x cheaper than
// parsing the YAML, which dominated start-up. Empty when the YAML did not parse.
const EMBEDDED_KEYS_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/keys.json"));
const EMBEDDED_RULES_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/rules.json"));

/// A kernel or Kubernetes version: major.minor[.patch], compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl FromStr for Version {
    type Err = String;

    /// Parses `6.18`, `6.18.44-fc-v445`, `v1.29.3`.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim().trim_start_matches('v');
        let mut parts = text
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse::<u32>());
        let major = parts.next().and_then(|p| p.ok());
        let minor = parts.next().and_then(|p| p.ok());
        match (major, minor) {
            (Some(major), Some(minor)) => Ok(Version(
                major,
                minor,
                parts.next().and_then(|p| p.ok()).unwrap_or(0),
            )),
            _ => Err(format!("{text:?} is not a version like 6.1 or 5.15.0")),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.2 == 0 {
            write!(f, "{}.{}", self.0, self.1)
        } else {
            write!(f, "{}.{}.{}", self.0, self.1, self.2)
        }
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The shape of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// 0 or 1.
    Bool,
    /// One integer.
    Int,
    /// One integer from `values`.
    Enum,
    /// `len` integers.
    Tuple,
    /// Two ports, low and high.
    PortRange,
    /// Comma list of ports and ranges, possibly empty.
    PortList,
    /// One word.
    String,
    /// Space-separated words.
    WordList,
}

/// Inclusive integer bounds; a missing side is unchecked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Lowest allowed.
    pub min: Option<i128>,
    /// Highest allowed.
    pub max: Option<i128>,
}

impl Bounds {
    /// Whether `n` is within the bounds.
    pub fn contains(&self, n: i128) -> bool {
        self.min.is_none_or(|min| n >= min) && self.max.is_none_or(|max| n <= max)
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) => write!(f, "{a}..={b}"),
            (Some(a), None) => write!(f, ">= {a}"),
            (None, Some(b)) => write!(f, "<= {b}"),
            (None, None) => f.write_str("unbounded"),
        }
    }
}

/// Where a key lives relative to network namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Per network namespace, writable in a child.
    Netns,
    /// Visible but read-only in a child netns.
    RoInChild,
    /// Registered only in the initial netns.
    InitOnly,
    /// Not namespaced at all (vm, fs, most kernel).
    Global,
    /// Per IPC namespace.
    Ipc,
}

/// Kubernetes classification of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum K8sClass {
    /// On the kubelet's safe list.
    Safe,
    /// Namespaced but not safe: needs kubelet `allowedUnsafeSysctls`.
    Unsafe,
    /// Cannot be set from a pod.
    Node,
}

/// Kubernetes facts about a key.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct K8s {
    /// Safe, unsafe or node-level.
    pub class: K8sClass,
    /// Kubernetes version that put it on the safe list.
    pub since: Option<Version>,
    /// Minimum node kernel for the kubelet to allow it.
    pub min_kernel: Option<Version>,
}

/// A default that applied to older kernels.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OlderDefault {
    /// Kernels older than this had `value`.
    pub before: Version,
    /// The old default.
    pub value: serde_norway::Value,
}

/// A semantic change in some kernel version.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The first kernel with the change.
    pub since: Version,
    /// What changed.
    pub note: String,
}

/// Everything the schema knows about one key or key pattern.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The dotted key or pattern.
    pub key: String,
    /// The value's shape.
    pub shape: Shape,
    /// Tuple length.
    pub len: Option<usize>,
    /// Enum values and their meaning.
    #[serde(default)]
    pub values: BTreeMap<i64, String>,
    /// Unit of the value.
    pub unit: Option<String>,
    /// Bounds the kernel enforces (EINVAL outside).
    pub kernel_bounds: Option<Bounds>,
    /// Bounds that are sane (warning outside).
    pub recommended: Option<Bounds>,
    /// Compiled-in default on current kernels.
    pub default: Option<serde_norway::Value>,
    /// How the kernel computes the default.
    pub default_note: Option<String>,
    /// Defaults of older kernels.
    #[serde(default)]
    pub older_defaults: Vec<OlderDefault>,
    /// First kernel with the key.
    pub added: Option<Version>,
    /// First kernel without it.
    pub removed: Option<Version>,
    /// First kernel where it does nothing.
    pub noop_since: Option<Version>,
    /// Semantic changes.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// What to use instead.
    pub replacement: Option<String>,
    /// Namespace scope.
    pub scope: Scope,
    /// Since when a child netns sees it read-only.
    pub ro_in_child_since: Option<Version>,
    /// Since when it is per-netns.
    pub namespaced_since: Option<Version>,
    /// Kubernetes facts.
    pub k8s: Option<K8s>,
    /// The one sentence an operator must know.
    pub caveat: String,
    /// Where common advice is wrong.
    pub contradicts: Option<String>,
    /// Where the facts come from.
    pub sources: Vec<String>,
}

impl KeySpec {
    /// The default value on `kernel`, if known.
    pub fn default_for(&self, kernel: Version) -> Option<Value> {
        let older = self
            .older_defaults
            .iter()
            .filter(|d| kernel < d.before)
            .min_by_key(|d| d.before);
        older
            .map(|d| &d.value)
            .or(self.default.as_ref())
            .map(yaml_to_value)
    }

    /// Whether the key exists on `kernel` according to `added`/`removed`.
    pub fn exists_on(&self, kernel: Version) -> bool {
        self.added.is_none_or(|v| kernel >= v) && self.removed.is_none_or(|v| kernel < v)
    }
}

/// Converts a YAML default (scalar or list) into a [`Value`].
pub fn yaml_to_value(v: &serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    let token = |v: &Y| match v {
        Y::Number(n) => n.to_string(),
        Y::String(s) => s.clone(),
        Y::Bool(b) => u8::from(*b).to_string(),
        _ => String::new(),
    };
    match v {
        Y::Sequence(items) => Value::from_tokens(items.iter().map(token).collect()),
        other => Value::from_tokens(vec![token(other)]),
    }
}

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Probably wrong; fails only with `--deny-warnings`.
    Warning,
    /// Wrong; blocks apply.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// Comparison operators of rule conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// ==
    Eq,
    /// !=
    Ne,
    /// <
    Lt,
    /// <=
    Le,
    /// >
    Gt,
    /// >=
    Ge,
}

impl Op {
    /// Applies the operator.
    pub fn holds<T: Ord>(self, a: T, b: T) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

/// A version comparison such as `>= 4.12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VersionReq {
    /// The operator.
    pub op: Op,
    /// The version.
    pub version: Version,
}

impl<'de> Deserialize<'de> for VersionReq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(p, op)| text.strip_prefix(p).map(|rest| (*op, rest)))
            .ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?}: expected an operator such as >= 4.12"))
            })?;
        let version = rest.parse().map_err(serde::de::Error::custom)?;
        Ok(VersionReq { op, version })
    }
}

/// One condition of a data rule (see `schema/README.md`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Condition {
    /// The profile sets the key.
    Set {
        /// The key.
        set: String,
    },
    /// The profile does not set the key.
    Unset {
        /// The key.
        unset: String,
    },
    /// Compares a key's effective value with a constant or another key.
    Compare {
        /// The key.
        key: String,
        /// Element of a tuple.
        index: Option<usize>,
        /// Operator.
        op: Op,
        /// Constant operand.
        value: Option<i64>,
        /// Other key operand.
        other: Option<String>,
        /// Element of the other key.
        other_index: Option<usize>,
    },
    /// A context fact equals a value.
    Context {
        /// The fact.
        context: String,
        /// The value it must equal.
        is: serde_norway::Value,
    },
    /// Target kernel version requirement.
    Kernel {
        /// The requirement.
        kernel: VersionReq,
    },
    /// Target Kubernetes version requirement.
    K8s {
        /// The requirement.
        k8s: VersionReq,
    },
}

/// A rule written as data in `rules.yaml`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataRule {
    /// Stable id.
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// The key the finding points at.
    pub key: String,
    /// Conditions, all of which must hold.
    pub when: Vec<Condition>,
    /// What is wrong.
    pub message: String,
    /// The fix.
    pub help: String,
    /// Where the rule comes from.
    pub sources: Vec<String>,
}

/// The loaded schema.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Every key entry, in file order.
    pub keys: Vec<KeySpec>,
    /// Data rules, in file order.
    pub rules: Vec<DataRule>,
    exact: HashMap<SysctlKey, usize>,
    patterns: Vec<(KeyPattern, usize)>,
}

impl Schema {
    /// The schema compiled into the binary.
    pub fn embedded() -> Result<Self> {
        let keys = serde_json::from_str::<Vec<KeySpec>>(EMBEDDED_KEYS_JSON);
        let rules = serde_json::from_str::<Vec<DataRule>>(EMBEDDED_RULES_JSON);
        match (keys, rules) {
            (Ok(keys), Ok(rules)) => Self::build(keys, "keys.yaml", rules, "rules.yaml"),
            // The YAML path reports the problem with its file:line.
            _ => Self::from_texts(EMBEDDED_KEYS, "keys.yaml", EMBEDDED_RULES, "rules.yaml"),
        }
    }

    /// Loads `keys.yaml` and `rules.yaml` from a directory (`--schema DIR`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| Error::io("read", path, e))
        };
        let (keys_name, rules_name) = (dir.join("keys.yaml"), dir.join("rules.yaml"));
        Self::from_texts(
            &read("keys.yaml")?,
            &keys_name.display().to_string(),
            &read("rules.yaml")?,
            &rules_name.display().to_string(),
        )
    }

    fn from_texts(keys: &str, keys_file: &str, rules: &str, rules_file: &str) -> Result<Self> {
        let schema_error = |file: &str, e: serde_norway::Error| Error::Schema {
            file: file.to_owned(),
            message: e.to_string(),
        };
        let keys: Vec<KeySpec> =
            serde_norway::from_str(keys).map_err(|e| schema_error(keys_file, e))?;
        let rules: Vec<DataRule> =
            serde_norway::from_str(rules).map_err(|e| schema_error(rules_file, e))?;
        Self::build(keys, keys_file, rules, rules_file)
    }

    fn build(
        keys: Vec<KeySpec>,
        keys_file: &str,
        rules: Vec<DataRule>,
        rules_file: &str,
    ) -> Result<Self> {
        let mut schema = Schema {
            keys,
            rules,
            exact: HashMap::new(),
            patterns: Vec::new(),
        };
        schema.index(keys_file)?;
        schema.check_rules(rules_file)?;
        Ok(schema)
    }

    fn index(&mut self, file: &str) -> Result<()> {
        let bad = |message: String| Error::Schema {
            file: file.to_owned(),
            message,
        };
        for (i, spec) in self.keys.iter().enumerate() {
            let pattern = KeyPattern::parse(&spec.key).map_err(|e| bad(e.to_string()))?;
            if spec.sources.is_empty() {
                return Err(bad(format!(
                    "{}: every entry needs at least one source",
                    spec.key
                )));
            }
            if pattern.is_literal() {
                let key = SysctlKey::parse(&spec.key).map_err(|e| bad(e.to_string()))?;
                if self.exact.insert(key, i).is_some() {
                    return Err(bad(format!("{} is listed twice", spec.key)));
                }
            } else {
                self.patterns.push((pattern, i));
            }
        }
        Ok(())
    }

    fn check_rules(&self, file: &str) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for rule in &self.rules {
            let bad = |message: String| Error::Schema {
                file: file.to_owned(),
                message: format!("rule {}: {message}", rule.id),
            };
            if !seen.insert(rule.id.as_str()) {
                return Err(bad("id is used twice".into()));
            }
            SysctlKey::parse(&rule.key).map_err(|e| bad(e.to_string()))?;
            for condition in &rule.when {
                if let Condition::Compare {
                    value: None,
                    other: None,
                    ..
                } = condition
                {
                    return Err(bad("a key comparison needs `value` or `other`".into()));
                }
            }
        }
        Ok(())
    }

    /// The entry describing `key`: an exact entry first, else the first matching pattern.
    pub fn lookup(&self, key: &SysctlKey) -> Option<&KeySpec> {
        let index = self.exact.get(key).copied().or_else(|| {
            self.patterns
                .iter()
                .find(|(p, _)| p.matches(key))
                .map(|(_, i)| *i)
        });
        index.map(|i| &self.keys[i])
    }

    /// The entry for a key written as text (for rules and `explain`).
    pub fn lookup_text(&self, key: &str) -> Option<&KeySpec> {
        SysctlKey::parse(key)
            .ok()
            .and_then(|k| self.lookup(&k))
            .or_else(|| self.keys.iter().find(|s| s.key == key))
    }

    /// The closest known key name to `key`, for did-you-mean.
    pub fn suggest(&self, key: &SysctlKey) -> Option<String> {
        let text = key.to_string();
        closest(&text, self.keys.iter().map(|s| s.key.as_str()))
            .map(str::to_owned)
            .or_else(|| {
                let leaf = key.leaf();
                let same_leaf = self
                    .keys
                    .iter()
                    .find(|s| s.key.rsplit('.').next() == Some(leaf));
                same_leaf.map(|s| s.key.clone())
            })
    }
}

/// The candidate closest to `word` by Jaro-Winkler similarity, if reasonably close.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(
            "6.18.44-fc-v445".parse::<Version>().unwrap(),
            Version(6, 18, 44)
        );
        assert_eq!("v1.29".parse::<Version>().unwrap(), Version(1, 29, 0));
        assert!("4.9".parse::<Version>().unwrap() < "4.12".parse::<Version>().unwrap());
        assert!("six".parse::<Version>().is_err());
    }

    #[test]
    fn embedded_schema_loads_and_looks_up_patterns() {
        let schema = Schema::embedded().unwrap();
        let key = SysctlKey::parse("net.ipv4.conf.eth0/100.rp_filter").unwrap();
        assert_eq!(
            schema.lookup(&key).unwrap().key,
            "net.ipv4.conf.*.rp_filter"
        );
        let typo = SysctlKey::parse("net.ipv4.tcp_fin_timout").unwrap();
        assert_eq!(
            schema.suggest(&typo).as_deref(),
            Some("net.ipv4.tcp_fin_timeout")
        );
    }

    #[test]
    fn the_build_time_json_is_the_embedded_yaml() {
        let json = |schema: &Schema| {
            serde_json::to_value((&schema.keys, &schema.rules)).expect("schema serialises")
        };
        let keys = serde_json::from_str::<Vec<KeySpec>>(EMBEDDED_KEYS_JSON);
        let rules = serde_json::from_str::<Vec<DataRule>>(EMBEDDED_RULES_JSON);
        assert!(
            keys.is_ok() && rules.is_ok(),
            "build.rs JSON: {:?} {:?}",
            keys.err(),
            rules.err()
        );
        let yaml =
            Schema::from_texts(EMBEDDED_KEYS, "keys.yaml", EMBEDDED_RULES, "rules.yaml").unwrap();
        assert_eq!(json(&Schema::embedded().unwrap()), json(&yaml));
    }

    #[test]
    fn older_defaults_apply_below_their_version() {
        let schema = Schema::embedded().unwrap();
        let spec = schema.lookup_text("net.core.somaxconn").unwrap();
        assert_eq!(
            spec.default_for(Version(6, 1, 0)).unwrap().to_string(),
            "4096"
        );
        assert_eq!(
            spec.default_for(Version(4, 19, 0)).unwrap().to_string(),
            "128"
        );
    }
}
