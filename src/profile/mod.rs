//! Profiles: YAML files describing a host role, resolved through `extends` into one [`Profile`].
//!
//! This module owns reading files (bounded size, UTF-8), interpreting the YAML tree into typed
//! settings with positions, merging parents (later wins, cycles refused) and fingerprinting the
//! result. It does not know which keys exist or what values are sane: that is `schema` and
//! `validate`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::profile::pattern::{Glob, is_glob};

pub mod health;
pub mod key;
pub mod pattern;
pub mod rollout;
pub mod section;
pub mod value;
pub mod yaml;

pub use crate::error::Location;
use crate::error::{Error, Result};
use crate::profile::key::SysctlKey;
use crate::profile::value::{Value, is_ambiguous_number};
use crate::profile::yaml::{Mark, Node, NodeKind};

/// Largest profile file read, in bytes.
pub const MAX_PROFILE_BYTES: u64 = 1024 * 1024;
/// The profile format version this build reads.
pub const FORMAT_VERSION: i64 = 1;

/// The fields a profile may have at the top level.
pub const TOP_LEVEL_FIELDS: &[&str] = &[
    "version",
    "name",
    "description",
    "extends",
    "context",
    "sysctls",
    "health",
    "rollout",
];
/// The fields of a `sysctls` entry written as a mapping.
pub const SETTING_FIELDS: &[&str] = &["value", "reason", "source", "optional"];

/// The context facts a profile may declare, and their kinds.
pub const CONTEXT_FACTS: &[(&str, FactKind, &str)] = &[
    (
        "nat",
        FactKind::Bool,
        "peers reach this host through NAT (NAT-mode load balancer, SNAT'd or mobile clients)",
    ),
    (
        "datacenter_only",
        FactKind::Bool,
        "every peer is in the same datacenter (low RTT, no middleboxes)",
    ),
    (
        "server",
        FactKind::Bool,
        "the host accepts inbound connections",
    ),
    (
        "kubernetes_pod",
        FactKind::Bool,
        "the profile is for a pod's own network namespace",
    ),
    (
        "kubernetes_node",
        FactKind::Bool,
        "the host is a Kubernetes node (NodePort range reserved)",
    ),
    (
        "lvs_dr_real_server",
        FactKind::Bool,
        "the host is a real server behind LVS in direct-routing mode",
    ),
    (
        "listening_ports",
        FactKind::PortList,
        "ports the host listens on",
    ),
    (
        "vip_interfaces",
        FactKind::NameList,
        "interfaces carrying an LVS virtual IP",
    ),
    (
        "k8s_version",
        FactKind::Text,
        "target Kubernetes version (pod profiles)",
    ),
    (
        "nodeport_range",
        FactKind::Text,
        "the cluster's NodePort range, default 30000-32767",
    ),
];

/// The kind of a context fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactKind {
    /// true / false.
    Bool,
    /// A list of port numbers.
    PortList,
    /// A list of names.
    NameList,
    /// A string.
    Text,
}

/// Where a YAML node is in `file`.
fn location(file: &Arc<str>, mark: Mark) -> Location {
    Location {
        file: file.clone(),
        line: mark.line.max(1),
        col: mark.col.max(1),
    }
}

/// A context fact's value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Fact {
    /// A boolean.
    Bool(bool),
    /// A list of ports.
    Ports(Vec<u16>),
    /// A list of names.
    Names(Vec<String>),
    /// A string.
    Text(String),
}

/// One `sysctls` entry after parsing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Setting {
    /// The key.
    pub key: SysctlKey,
    /// The desired value.
    pub value: Value,
    /// Why the profile sets it.
    pub reason: Option<String>,
    /// Where the value comes from (doc section, seed).
    pub source: Option<String>,
    /// Missing keys are skipped instead of failing the apply (sysctl.d's `-` prefix).
    pub optional: bool,
    /// Where the key is written.
    pub at: Location,
    /// Where the value is written.
    pub value_at: Location,
    /// The pattern key (`net.ipv4.conf.*.rp_filter`) this setting was expanded from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// A `sysctls` entry whose key is a glob (`net.ipv4.conf.*.rp_filter: 2`), as sysctl.d(5)
/// allows: it stands for every matching key of the target, found when the profile is expanded
/// against it ([`Profile::expand_patterns`]); a key the profile names itself wins over it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PatternSetting {
    /// The pattern.
    #[serde(serialize_with = "display")]
    pub glob: Glob,
    /// The entry as written; its `key` is a stand-in, replaced by each match.
    pub entry: Setting,
}

fn display<T: fmt::Display, S: serde::Serializer>(
    value: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A profile with its parents merged in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    /// The profile's name (the file stem when not given).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The file the user named.
    pub path: PathBuf,
    /// Context facts, parents' first, later wins.
    pub context: BTreeMap<String, Fact>,
    /// Settings by key; the map order is the apply order before kernel constraints. After
    /// [`Profile::expand_patterns`] it holds the keys the patterns stand for too.
    pub settings: BTreeMap<SysctlKey, Setting>,
    /// Pattern keys, parents' first, in file order (a later one wins over an earlier one).
    pub patterns: Vec<PatternSetting>,
    /// Patterns that matched no key of the target when expanded.
    #[serde(skip)]
    pub unmatched: Vec<PatternSetting>,
    /// sha256 of every file's bytes in resolution order: stable across hosts and checkouts.
    pub fingerprint: String,
    /// Health gates (`health:`), parents' first, later files replace gates on the same counter.
    pub health: crate::profile::health::HealthSpec,
    /// Rollout stages (`rollout:`), the last file that has them wins.
    pub rollout: Option<crate::profile::rollout::RolloutSpec>,
    /// Every file read, in resolution order.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
    /// The text of every file read, for rendering carets under findings.
    #[serde(skip)]
    pub texts: BTreeMap<Arc<str>, Arc<str>>,
}

/// Files already read and parsed in this process, by canonical path: profiles loaded together
/// (`validate profiles/*.yaml`) share their parents, which are then read and parsed once.
#[derive(Default)]
pub struct ParseCache {
    files: HashMap<PathBuf, Parsed>,
}

/// A file's text and its top-level mapping.
type Parsed = (Arc<str>, Arc<[(Node, Node)]>);

impl Profile {
    /// Loads a profile and every profile it extends.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &mut ParseCache::default())
    }

    /// [`Profile::load`], reusing (and adding to) the files parsed by earlier loads.
    pub fn load_with(path: &Path, cache: &mut ParseCache) -> Result<Self> {
        let mut loader = Loader {
            cache: std::mem::take(cache),
            ..Loader::default()
        };
        let display: Arc<str> = path.display().to_string().into();
        let root = loader.resolve(path, display, None);
        *cache = std::mem::take(&mut loader.cache);
        let root = root?;
        if loader.settings.is_empty() && !loader.sysctls_declared {
            return Err(profile_error(
                Location::start(path.display().to_string()),
                "the profile sets no sysctls: it has no `sysctls:` field".into(),
                Some(
                    "add `sysctls:`; write `sysctls: {}` to apply an empty profile on purpose (it releases every key sysprof set)",
                ),
            ));
        }
        let name = root.name.clone().unwrap_or_else(|| stem(path));
        Ok(Self {
            name,
            description: root.description,
            path: path.to_owned(),
            context: loader.context,
            settings: loader.settings,
            patterns: loader.patterns,
            unmatched: Vec::new(),
            fingerprint: hex(&loader.hasher.finalize()),
            health: loader.health,
            rollout: loader.rollout,
            files: loader.files,
            texts: loader.texts,
        })
    }

    /// Adds the keys each pattern stands for: `matches` lists the target's keys that match a
    /// glob. A key the profile names itself keeps its own value; of two patterns matching one
    /// key, the later wins. Patterns that match nothing are kept in `unmatched`.
    pub fn expand_patterns(&mut self, matches: impl Fn(&Glob) -> Vec<SysctlKey>) {
        for pattern in &self.patterns {
            let keys = matches(&pattern.glob);
            if keys.is_empty() {
                self.unmatched.push(pattern.clone());
            }
            for key in keys {
                let named = self.settings.get(&key).is_some_and(|s| s.pattern.is_none());
                if named {
                    continue;
                }
                let setting = Setting {
                    key: key.clone(),
                    pattern: Some(pattern.glob.to_string()),
                    ..pattern.entry.clone()
                };
                self.settings.insert(key, setting);
            }
        }
    }

    /// A context fact as a boolean (absent = false).
    pub fn fact(&self, name: &str) -> bool {
        matches!(self.context.get(name), Some(Fact::Bool(true)))
    }

    /// A context fact as text.
    pub fn fact_text(&self, name: &str) -> Option<&str> {
        match self.context.get(name) {
            Some(Fact::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// The setting for a key, if the profile sets it.
    pub fn get(&self, key: &SysctlKey) -> Option<&Setting> {
        self.settings.get(key)
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profile".into())
}

/// The top-level fields of one file, before merging.
#[derive(Default)]
struct Document {
    name: Option<String>,
    description: Option<String>,
}

#[derive(Default)]
struct Loader {
    stack: Vec<PathBuf>,
    files: Vec<PathBuf>,
    texts: BTreeMap<Arc<str>, Arc<str>>,
    context: BTreeMap<String, Fact>,
    settings: BTreeMap<SysctlKey, Setting>,
    patterns: Vec<PatternSetting>,
    health: crate::profile::health::HealthSpec,
    rollout: Option<crate::profile::rollout::RolloutSpec>,
    hasher: Sha256,
    cache: ParseCache,
    /// Some file of the chain has a `sysctls:` field (an empty one is an empty profile on
    /// purpose).
    sysctls_declared: bool,
}

impl Loader {
    /// Reads `path`, resolves its parents first, then merges its own facts and settings.
    fn resolve(
        &mut self,
        path: &Path,
        display: Arc<str>,
        from: Option<Location>,
    ) -> Result<Document> {
        let canonical = std::fs::canonicalize(path).map_err(|e| missing(path, from.clone(), e))?;
        if let Some(start) = self.stack.iter().position(|p| *p == canonical) {
            let mut chain = self.stack[start..].to_vec();
            chain.push(canonical);
            return Err(Error::ExtendsCycle { at: from, chain });
        }
        let (text, root) = match self.cache.files.get(&canonical) {
            Some((text, root)) => (text.clone(), root.clone()),
            None => {
                let text: Arc<str> = read_bounded(path, &display, from)?.into();
                let yaml_named = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
                let root = parse_root(&text, &display).map_err(|e| match yaml_named {
                    true => with_snippet(e, &display, &text),
                    false => e,
                })?;
                if !yaml_named && !has_profile_field(&root) {
                    return Err(not_a_profile(&display));
                }
                let root: Arc<[(Node, Node)]> = root.into();
                let parsed = (text.clone(), root.clone());
                self.cache.files.insert(canonical.clone(), parsed);
                (text, root)
            }
        };
        self.texts.insert(display.clone(), text.clone());
        self.stack.push(canonical);
        let doc = self
            .document(&root, path, &display)
            .map_err(|e| with_snippet(e, &display, &text))?;
        self.stack.pop();
        self.hasher.update((text.len() as u64).to_le_bytes());
        self.hasher.update(text.as_bytes());
        self.files.push(path.to_owned());
        Ok(doc)
    }

    fn document(
        &mut self,
        root: &[(Node, Node)],
        path: &Path,
        file: &Arc<str>,
    ) -> Result<Document> {
        let at = |node: &Node| location(file, node.mark);
        let mut doc = Document::default();
        if !root.iter().any(|(k, _)| k.as_scalar() == Some("version")) {
            return Err(profile_error(
                Location::start(file.clone()),
                "the profile has no `version` field".into(),
                Some("start every profile file with `version: 1`"),
            ));
        }
        if let Some((_, parents)) = root.iter().find(|(k, _)| k.as_scalar() == Some("extends")) {
            for (parent, parent_at) in string_list(parents, file)? {
                let parent_path = path.parent().unwrap_or(Path::new(".")).join(&parent);
                let display: Arc<str> = parent_path.display().to_string().into();
                self.resolve(&parent_path, display, Some(parent_at))?;
            }
        }
        for (key, value) in root {
            let field = key.as_scalar().unwrap_or_default();
            match field {
                "version" => check_version(value, file)?,
                "name" => doc.name = Some(scalar_string(value, file, "name")?),
                "description" => doc.description = Some(scalar_string(value, file, "description")?),
                "extends" => {}
                "context" => self.context(value, file)?,
                "sysctls" => {
                    self.sysctls_declared = true;
                    self.sysctls(value, file)?
                }
                "health" => self
                    .health
                    .merge(crate::profile::health::HealthSpec::parse(value, file)?),
                "rollout" => {
                    self.rollout = Some(crate::profile::rollout::RolloutSpec::parse(value, file)?)
                }
                other => {
                    return Err(unknown_field(
                        at(key),
                        "top-level field",
                        other,
                        TOP_LEVEL_FIELDS,
                    ));
                }
            }
        }
        Ok(doc)
    }

    fn context(&mut self, node: &Node, file: &Arc<str>) -> Result<()> {
        for (key, value) in mapping(node, file, "context")? {
            let name = key.as_scalar().unwrap_or_default();
            let names: Vec<&str> = CONTEXT_FACTS.iter().map(|f| f.0).collect();
            let Some((_, kind, _)) = CONTEXT_FACTS.iter().find(|f| f.0 == name) else {
                return Err(unknown_field(
                    location(file, key.mark),
                    "context fact",
                    name,
                    &names,
                ));
            };
            self.context
                .insert(name.to_owned(), fact(value, *kind, file, name)?);
        }
        Ok(())
    }

    fn sysctls(&mut self, node: &Node, file: &Arc<str>) -> Result<()> {
        for (key_node, value_node) in mapping(node, file, "sysctls")? {
            let at = location(file, key_node.mark);
            let text = key_node.as_scalar().unwrap_or_default();
            if is_glob(text) {
                self.pattern(text, at, value_node, file)?;
                continue;
            }
            let key = SysctlKey::parse(text)
                .map_err(|e| profile_error(at.clone(), e.to_string(), None))?;
            if let Some(first) = self.settings.get(&key).filter(|s| s.at.file == at.file) {
                let message = format!(
                    "{key} is set twice (also as {:?} at line {})",
                    text, first.at.line
                );
                return Err(profile_error(at, message, Some("keep one of them")));
            }
            let setting = setting(key.clone(), &key, at, value_node, file)?;
            self.settings.insert(key, setting);
        }
        Ok(())
    }

    /// A pattern key: replaces the same pattern from a parent (a pattern twice in one file is
    /// refused, like a key).
    fn pattern(&mut self, text: &str, at: Location, node: &Node, file: &Arc<str>) -> Result<()> {
        let glob = Glob::parse(text).map_err(|e| profile_error(at.clone(), e.to_string(), None))?;
        if let Some(first) = self
            .patterns
            .iter()
            .find(|p| p.glob == glob && p.entry.at.file == at.file)
        {
            let message = format!("{glob} is set twice (also at line {})", first.entry.at.line);
            return Err(profile_error(at, message, Some("keep one of them")));
        }
        let stand_in = glob.stand_in();
        let entry = setting(stand_in, &glob, at, node, file)?;
        self.patterns.retain(|p| p.glob != glob);
        self.patterns.push(PatternSetting { glob, entry });
        Ok(())
    }
}

fn missing(path: &Path, from: Option<Location>, why: impl std::fmt::Display) -> Error {
    match from {
        Some(at) => profile_error(
            at,
            format!("cannot read parent profile {}: {why}", path.display()),
            None,
        ),
        // An unreadable profile is invalid input (exit 3), like a malformed one.
        None => profile_error(
            Location::start(path.display().to_string()),
            format!("cannot read profile: {why}"),
            None,
        ),
    }
}

/// The file's text: a regular file (a FIFO or device is refused before anything is read) of at
/// most [`MAX_PROFILE_BYTES`] bytes of UTF-8.
fn read_bounded(path: &Path, display: &Arc<str>, from: Option<Location>) -> Result<String> {
    let bytes = crate::files::read(path, crate::files::Policy::input(MAX_PROFILE_BYTES))
        .map_err(|e| missing(path, from.clone(), e))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        profile_error(
            Location {
                file: display.clone(),
                line,
                col,
            },
            "profile is not valid UTF-8".into(),
            None,
        )
    })
}

/// Longest mapping key YAML reads without explicit `? ` syntax (YAML 1.2, 7.4.2); a longer
/// one is a key far past any sysctl name (256 bytes), said as such rather than as a YAML error.
const MAX_IMPLICIT_KEY: usize = 1024;

fn parse_root(text: &str, file: &Arc<str>) -> Result<Vec<(Node, Node)>> {
    check_key_lengths(text, file)?;
    let node =
        yaml::parse(text).map_err(|e| profile_error(location(file, e.mark), e.message, None))?;
    let Some(node) = node else {
        let at = Location {
            file: file.clone(),
            line: 1,
            col: 1,
        };
        return Err(profile_error(
            at,
            "profile is empty".into(),
            Some("a profile needs at least `sysctls:`"),
        ));
    };
    match node.kind {
        NodeKind::Map(entries) => Ok(entries),
        _ => Err(profile_error(
            location(file, node.mark),
            format!("a profile is a mapping, not {}", node.kind_name()),
            None,
        )),
    }
}

fn check_version(node: &Node, file: &Arc<str>) -> Result<()> {
    let plain_int = match &node.kind {
        NodeKind::Scalar { text, plain: true } => text.parse::<i64>().ok(),
        _ => None,
    };
    if plain_int == Some(FORMAT_VERSION) {
        return Ok(());
    }
    let message = match &node.kind {
        NodeKind::Scalar { text, plain: false } => format!(
            "`version` is the string {:?}, not the number {FORMAT_VERSION}",
            crate::error::shorten(text)
        ),
        _ => format!(
            "unsupported profile format version {}",
            crate::error::shorten(node.as_scalar().unwrap_or("(not a scalar)"))
        ),
    };
    Err(profile_error(
        location(file, node.mark),
        message,
        Some("write `version: 1` (a plain number) as the profile's first line"),
    ))
}

fn mapping<'n>(node: &'n Node, file: &Arc<str>, what: &str) -> Result<&'n [(Node, Node)]> {
    match &node.kind {
        NodeKind::Map(entries) => Ok(entries),
        _ if node.is_null() => Ok(&[]),
        _ => Err(profile_error(
            location(file, node.mark),
            format!("`{what}` must be a mapping, not {}", node.kind_name()),
            None,
        )),
    }
}

fn scalar_string(node: &Node, file: &Arc<str>, what: &str) -> Result<String> {
    match node.as_scalar() {
        Some(text) if !node.is_null() => Ok(text.to_owned()),
        _ => Err(profile_error(
            location(file, node.mark),
            format!("`{what}` must be a string, not {}", node.kind_name()),
            None,
        )),
    }
}

fn string_list(node: &Node, file: &Arc<str>) -> Result<Vec<(String, Location)>> {
    let items: Vec<&Node> = match &node.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        NodeKind::Scalar { .. } => vec![node],
        NodeKind::Map(_) => vec![node],
    };
    items
        .into_iter()
        .map(|item| {
            Ok((
                scalar_string(item, file, "extends")?,
                location(file, item.mark),
            ))
        })
        .collect()
}

fn fact(node: &Node, kind: FactKind, file: &Arc<str>, name: &str) -> Result<Fact> {
    let at = location(file, node.mark);
    let wrong = |expected: &str| {
        profile_error(
            at.clone(),
            format!(
                "context fact `{name}` must be {expected}, not {}",
                node.kind_name()
            ),
            None,
        )
    };
    match kind {
        FactKind::Bool => match node.as_scalar() {
            Some("true") => Ok(Fact::Bool(true)),
            Some("false") => Ok(Fact::Bool(false)),
            _ => Err(wrong("true or false")),
        },
        FactKind::Text => node
            .as_scalar()
            .filter(|_| !node.is_null())
            .map(|t| Fact::Text(t.to_owned()))
            .ok_or_else(|| wrong("a string")),
        FactKind::PortList => {
            let NodeKind::Seq(items) = &node.kind else {
                return Err(wrong("a list of ports"));
            };
            let ports: Option<Vec<u16>> = items
                .iter()
                .map(|i| i.as_scalar().and_then(|s| s.parse().ok()))
                .collect();
            ports
                .map(Fact::Ports)
                .ok_or_else(|| wrong("a list of ports (1-65535)"))
        }
        FactKind::NameList => {
            let NodeKind::Seq(items) = &node.kind else {
                return Err(wrong("a list of names"));
            };
            let names: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_scalar().map(str::to_owned))
                .collect();
            names
                .map(Fact::Names)
                .ok_or_else(|| wrong("a list of names"))
        }
    }
}

/// One `sysctls` entry; `name` is the key or pattern as messages show it.
fn setting(
    key: SysctlKey,
    name: &dyn fmt::Display,
    at: Location,
    node: &Node,
    file: &Arc<str>,
) -> Result<Setting> {
    let mut setting = Setting {
        key,
        value: Value::default(),
        reason: None,
        source: None,
        optional: false,
        value_at: location(file, node.mark),
        at: at.clone(),
        pattern: None,
    };
    let NodeKind::Map(fields) = &node.kind else {
        setting.value = value(node, file, name)?;
        return Ok(setting);
    };
    let mut has_value = false;
    for (field, v) in fields {
        match field.as_scalar().unwrap_or_default() {
            "value" => {
                setting.value = value(v, file, name)?;
                setting.value_at = location(file, v.mark);
                has_value = true;
            }
            "reason" => {
                setting.reason =
                    Some(scalar_string(v, file, "reason").map_err(|e| of_key(name, e))?)
            }
            "source" => {
                setting.source =
                    Some(scalar_string(v, file, "source").map_err(|e| of_key(name, e))?)
            }
            "optional" => {
                setting.optional = match v.as_scalar() {
                    Some("true") => true,
                    Some("false") => false,
                    _ => {
                        let message = format!(
                            "{name}: `optional` must be true or false, not {}",
                            v.kind_name()
                        );
                        return Err(profile_error(location(file, v.mark), message, None));
                    }
                }
            }
            other => {
                return Err(unknown_field(
                    location(file, field.mark),
                    "setting field",
                    other,
                    SETTING_FIELDS,
                ));
            }
        }
    }
    if !has_value {
        return Err(profile_error(
            at,
            format!("{name} has no `value`"),
            Some("write `value: ...` or the plain value"),
        ));
    }
    Ok(setting)
}

/// Interprets a YAML scalar or flat list as a sysctl value.
fn value(node: &Node, file: &Arc<str>, key: &dyn fmt::Display) -> Result<Value> {
    let at = location(file, node.mark);
    match &node.kind {
        NodeKind::Scalar { text, plain } => Ok(Value::from_tokens(vec![token(
            text, *plain, node, &at, key,
        )?])),
        NodeKind::Seq(items) => {
            let tokens = items.iter().map(|item| match &item.kind {
                NodeKind::Scalar { text, plain } => {
                    token(text, *plain, item, &location(file, item.mark), key)
                }
                _ => Err(profile_error(
                    location(file, item.mark),
                    format!("{key}: list elements must be scalars"),
                    None,
                )),
            });
            Ok(Value::from_tokens(tokens.collect::<Result<_>>()?))
        }
        NodeKind::Map(_) => Err(profile_error(
            at,
            format!("{key}: a value is a scalar or a list"),
            None,
        )),
    }
}

fn token(
    text: &str,
    plain: bool,
    node: &Node,
    at: &Location,
    key: &dyn fmt::Display,
) -> Result<String> {
    if plain && node.is_null() {
        return Err(profile_error(
            at.clone(),
            format!("{key} has no value"),
            None,
        ));
    }
    if plain
        && matches!(
            text,
            "true" | "false" | "yes" | "no" | "on" | "off" | "True" | "False"
        )
    {
        return Err(profile_error(
            at.clone(),
            format!("{key}: {text:?} is not a sysctl value"),
            Some("write 1 or 0"),
        ));
    }
    if let Some(bad) = text.split_whitespace().find(|t| is_ambiguous_number(t)) {
        let help = "the kernel reads 010 as octal 8 and accepts 0x10: write plain decimal";
        return Err(profile_error(
            at.clone(),
            format!("{key}: {bad:?} is not a plain decimal number"),
            Some(help),
        ));
    }
    if let Some(bad) = text.chars().find(|c| c.is_control() && !c.is_whitespace()) {
        return Err(profile_error(
            at.clone(),
            format!("{key}: control character {bad:?} in value"),
            None,
        ));
    }
    Ok(text.to_owned())
}

/// Names the key in an error about one of its setting's fields.
fn of_key(key: &dyn fmt::Display, err: Error) -> Error {
    match err {
        Error::Profile {
            at,
            message,
            help,
            snippet,
        } => Error::Profile {
            at,
            message: format!("{key}: {message}"),
            help,
            snippet,
        },
        other => other,
    }
}

/// Refuses a line whose key (the text before the first `: `) is longer than YAML can read.
fn check_key_lengths(text: &str, file: &Arc<str>) -> Result<()> {
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let key = body
            .split(": ")
            .next()
            .unwrap_or(body)
            .trim_end_matches(':');
        if key.len() > MAX_IMPLICIT_KEY && !key.starts_with('#') {
            let at = Location {
                file: file.clone(),
                line: i + 1,
                col: line.len() - body.len() + 1,
            };
            let message = format!(
                "this key is {} bytes long; a sysctl name is at most 256 bytes",
                key.len()
            );
            return Err(profile_error(at, message, None));
        }
    }
    Ok(())
}

/// Whether a parsed file names at least one profile field at the top level: only then is it
/// treated (and quoted in errors) as a profile when its name does not end in `.yaml`/`.yml`.
fn has_profile_field(root: &[(Node, Node)]) -> bool {
    root.iter()
        .any(|(k, _)| k.as_scalar().is_some_and(|k| TOP_LEVEL_FIELDS.contains(&k)))
}

/// The error for a file that is not a profile at all (`extends: [/etc/shadow]`): nothing of its
/// content is repeated.
fn not_a_profile(file: &Arc<str>) -> Error {
    profile_error(
        Location::start(file.clone()),
        "this file is not a sysprof profile: none of its top-level fields is a profile field"
            .into(),
        Some("a profile is YAML with `version: 1` and `sysctls:`"),
    )
}

/// Longest source line quoted under an error.
const MAX_SNIPPET: usize = 200;

/// Attaches the line an error in this file points at (cut at [`MAX_SNIPPET`] characters), for
/// the caret under it. Only for text that is a profile: a file that is not one (`extends:
/// [/etc/shadow]`) is never quoted.
fn with_snippet(err: Error, file: &Arc<str>, text: &str) -> Error {
    match err {
        Error::Profile {
            at,
            message,
            help,
            snippet: None,
        } if at.file == *file => {
            let snippet = text.lines().nth(at.line.saturating_sub(1)).map(|line| {
                let mut cut: String = line.chars().take(MAX_SNIPPET).collect();
                if cut.len() < line.len() {
                    cut.push('…');
                }
                cut
            });
            Error::Profile {
                at,
                message,
                help,
                snippet,
            }
        }
        other => other,
    }
}

fn profile_error(at: Location, message: String, help: Option<&str>) -> Error {
    Error::Profile {
        at,
        message,
        help: help.map(str::to_owned),
        snippet: None,
    }
}

fn unknown_field(at: Location, what: &str, name: &str, expected: &[&str]) -> Error {
    let suggestion = crate::error::closest(name, expected.iter().copied());
    let help = match suggestion {
        Some(s) => format!(
            "did you mean `{s}`? expected one of: {}",
            expected.join(", ")
        ),
        None => format!("expected one of: {}", expected.join(", ")),
    };
    Error::Profile {
        at,
        message: format!("unknown {what} `{}`", crate::error::shorten(name)),
        help: Some(help),
        snippet: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn settings_keep_positions_and_parents_merge_with_later_winning() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.yaml",
            "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.core.somaxconn: 1024\ncontext:\n  nat: true\n",
        );
        write(
            dir.path(),
            "b.yaml",
            "version: 1\nsysctls:\n  net.core.somaxconn: 2048\n",
        );
        let child = write(
            dir.path(),
            "c.yaml",
            "version: 1\nname: c\nextends: [a.yaml, b.yaml]\nsysctls:\n  net/ipv4/tcp_fin_timeout:\n    value: 20\n    reason: r\n  net.ipv4.ip_local_port_range: [1024, 65535]\n",
        );
        let profile = Profile::load(&child).unwrap();
        let get = |k: &str| profile.get(&SysctlKey::parse(k).unwrap()).unwrap();
        assert_eq!(get("net.core.somaxconn").value.to_string(), "2048");
        let fin = get("net.ipv4.tcp_fin_timeout");
        assert_eq!(
            (fin.value.to_string().as_str(), fin.at.line, fin.at.col),
            ("20", 5, 3)
        );
        assert_eq!(fin.value_at.line, 6);
        assert!(fin.at.file.ends_with("c.yaml"));
        assert_eq!(
            get("net.ipv4.ip_local_port_range").value.tokens(),
            ["1024", "65535"]
        );
        assert!(profile.fact("nat"));
        assert_eq!(profile.files.len(), 3);
        assert_eq!(profile.fingerprint.len(), 64);
    }

    #[test]
    fn cycles_and_missing_parents_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.yaml",
            "version: 1\nextends: [b.yaml]\nsysctls: {}\n",
        );
        let b = write(
            dir.path(),
            "b.yaml",
            "version: 1\nextends: a.yaml\nsysctls: {}\n",
        );
        assert!(matches!(Profile::load(&b), Err(Error::ExtendsCycle { .. })));
        let c = write(
            dir.path(),
            "c.yaml",
            "version: 1\nsysctls: {}\nextends: [nope.yaml]\n",
        );
        let err = Profile::load(&c).unwrap_err().to_string();
        assert!(
            err.contains("c.yaml:3:11") && err.contains("nope.yaml"),
            "{err}"
        );
    }

    #[test]
    fn profiles_loaded_together_parse_a_shared_parent_once() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "base.yaml",
            "version: 1\nsysctls:\n  net.core.somaxconn: 4096\n",
        );
        let child = "version: 1\nextends: base.yaml\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n";
        let a = write(dir.path(), "a.yaml", child);
        let b = write(dir.path(), "b.yaml", child);
        let mut cache = ParseCache::default();
        let (shared_a, shared_b) = (
            Profile::load_with(&a, &mut cache).unwrap(),
            Profile::load_with(&b, &mut cache).unwrap(),
        );
        assert_eq!(cache.files.len(), 3, "base.yaml once, each child once");
        for (shared, alone) in [(shared_a, Profile::load(&a)), (shared_b, Profile::load(&b))] {
            let alone = alone.unwrap();
            assert_eq!(
                format!("{:?}", shared.settings),
                format!("{:?}", alone.settings)
            );
            assert_eq!(shared.fingerprint, alone.fingerprint);
            assert_eq!(shared.files, alone.files);
            assert_eq!(shared.texts, alone.texts);
        }
    }

    #[test]
    fn malformed_profiles_name_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("", "1:1", "empty"),
            ("- a\n", "1:1", "mapping"),
            (
                "version: 1\nsysctl:\n  a.b: 1\n",
                "2:1",
                "did you mean `sysctls`",
            ),
            ("sysctls:\n  a.b: 1\n", "1:1", "no `version` field"),
            (
                "version: \"1\"\nsysctls: {}\n",
                "1:10",
                "the string \"1\", not the number 1",
            ),
            ("version: 1\nname: x\n", "1:1", "sets no sysctls"),
            (
                Box::leak(
                    format!("version: 1\nsysctls:\n  net.{}: 1\n", "x".repeat(20_000))
                        .into_boxed_str(),
                ),
                "3:3",
                "20004 bytes long",
            ),
            (
                "version: 2\nsysctls: {}\n",
                "1:10",
                "unsupported profile format version 2",
            ),
            (
                "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 030\n",
                "3:29",
                "plain decimal",
            ),
            (
                "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: true\n",
                "3:29",
                "not a sysctl value",
            ),
            (
                "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout:\n",
                "3:27",
                "has no value",
            ),
            (
                "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: {reason: x}\n",
                "3:3",
                "has no `value`",
            ),
            (
                "version: 1\nsysctls:\n  ../etc/passwd: 1\n",
                "3:3",
                "leave the sysctl root",
            ),
            (
                "version: 1\nsysctls:\n  a.b: 1\n  a/b: 2\n",
                "4:3",
                "set twice",
            ),
            (
                "version: 1\ncontext:\n  natt: true\n",
                "3:3",
                "did you mean `nat`",
            ),
            ("version: 1\ncontext:\n  nat: 1\n", "3:8", "true or false"),
            (
                "version: 1\nsysctls:\n  a.b: {value: 1, why: x}\n",
                "3:19",
                "unknown setting field",
            ),
        ];
        for (i, (text, at, expected)) in cases.iter().enumerate() {
            let path = write(dir.path(), &format!("p{i}.yaml"), text);
            let err = Profile::load(&path).unwrap_err();
            let shown = format!("{err} {}", err.help().unwrap_or_default());
            assert!(
                shown.contains(&format!("p{i}.yaml:{at}")) && shown.contains(expected),
                "{text:?}: {shown}"
            );
        }
    }

    #[test]
    fn non_utf8_and_oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, b"sysctls:\n  a.b: \xff\n").unwrap();
        assert!(
            Profile::load(&bad)
                .unwrap_err()
                .to_string()
                .contains("bad.yaml:2:8: profile is not valid UTF-8")
        );
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_PROFILE_BYTES as usize + 1]).unwrap();
        assert!(
            Profile::load(&big)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
    }
}
