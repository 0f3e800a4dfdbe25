//! Kubernetes manifests checked before admission: every pod spec in a manifest file and its
//! `securityContext.sysctls`, judged the way the API server, the kubelet and the kernel will.
//!
//! Pod specs are found where each kind keeps them: a Pod's `spec`; the pod template of a
//! Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController or Job
//! (`spec.template.spec`); a CronJob's `spec.jobTemplate.spec.template.spec`; a PodTemplate's
//! `template.spec`; the items of a `List`. Files may hold many `---` documents; other kinds are
//! skipped.
//!
//! Each pod spec becomes a pod profile (context `kubernetes_pod: true`, its container ports as
//! `listening_ports`, every sysctl a setting at the position of its name), so `validate`'s checks
//! and rules apply unchanged: unknown keys, shapes and kernel bounds, keys that are not per
//! namespace (`pod-not-namespaced`), the seed rules for pods (`pod-tw-reuse`, `pod-tw-recycle`).
//! What only a manifest can get wrong is judged here ([`RULES`]): an entry the API server
//! refuses, a namespaced key that is neither on the safe list nor in the kubelet's allowlist, a
//! sysctl of a namespace the pod shares with the node. This module reads files and judges; it
//! never prints.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

mod entries;
mod kubelet;

pub use kubelet::{UnsafePattern, dotted};

use entries::{Entry, misplaced_sysctls, read_entries};
use kubelet::{host_namespaces, kubelet_allowlist};

use crate::adopt::k8s::PodSysctl;
use crate::error::{Error, Location, Result};
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;
use crate::profile::yaml::{self, Node, NodeKind};
use crate::profile::{Fact, Profile, Setting};
use crate::schema::finding::{Finding, Target};
use crate::schema::rules::CodeRule;
use crate::schema::{Schema, Severity, validate};

/// Largest manifest file read, in bytes (rendered charts can be large).
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// Rule: an entry the API server refuses.
pub const MALFORMED: &str = "k8s-manifest";
/// Rule: a namespaced key neither safe nor allowed by the kubelet.
pub const NOT_ALLOWED: &str = "k8s-unsafe-not-allowed";
/// Rule: a sysctl of a namespace the pod shares with the node.
pub const HOST_NAMESPACE: &str = "k8s-host-namespace";

/// The rules only manifests can break (`explain` lists them with the schema's code rules).
pub const RULES: &[CodeRule] = &[
    CodeRule {
        id: MALFORMED,
        severity: Severity::Error,
        summary: "a securityContext.sysctls entry the API server refuses: no name or value, a value that is a YAML number rather than a string, a name that is not a sysctl name, a name given twice, sysctls in a container's securityContext",
        sources: &[
            "k8s:pkg/apis/core/validation/validation.go validateSysctls",
            "k8s:staging/src/k8s.io/api/core/v1/types.go Sysctl",
        ],
    },
    CodeRule {
        id: NOT_ALLOWED,
        severity: Severity::Error,
        summary: "a namespaced sysctl that is not on the kubelet's safe list for the target version and kernel, and not in --allowed-unsafe: the kubelet rejects the pod (SysctlForbidden)",
        sources: &[
            "k8s:pkg/kubelet/sysctl/allowlist.go",
            "k8s:pkg/kubelet/sysctl/safe_sysctls.go",
        ],
    },
    CodeRule {
        id: HOST_NAMESPACE,
        severity: Severity::Error,
        summary: "a pod with hostNetwork (hostIPC) sets a net.* (IPC) sysctl: it would change the node's namespace, and the kubelet rejects the pod",
        sources: &[
            "k8s:pkg/kubelet/sysctl/allowlist.go validateSysctl",
            "k8s:pkg/kubelet/sysctl/namespace.go",
        ],
    },
];

/// Where each workload kind keeps its pod spec.
const POD_SPEC_PATHS: &[(&str, &[&str])] = &[
    ("Pod", &["spec"]),
    ("Deployment", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
    ("ReplicaSet", &["spec", "template", "spec"]),
    ("ReplicationController", &["spec", "template", "spec"]),
    ("Job", &["spec", "template", "spec"]),
    (
        "CronJob",
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ),
    ("PodTemplate", &["template", "spec"]),
];

/// What the check is for: schema, target kernel and Kubernetes, the kubelet's allowlist.
pub struct Judge<'a> {
    /// The catalogue.
    pub schema: &'a Schema,
    /// Kernel and Kubernetes versions of the nodes.
    pub target: &'a Target,
    /// The kubelet's `allowedUnsafeSysctls`.
    pub allowed: &'a [UnsafePattern],
}

/// One pod spec and its findings.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// The object's kind (`Deployment`).
    pub kind: String,
    /// `metadata.name` (or `generateName`), `(unnamed)` when neither is given.
    pub name: String,
    /// `metadata.namespace`, when given.
    pub namespace: Option<String>,
    /// Where the pod spec is inside the document (`spec.template.spec`).
    pub pod_spec: String,
    /// The sysctls as written (entries with a name and a value).
    pub sysctls: Vec<PodSysctl>,
    /// Everything found, in file order.
    pub findings: Vec<Finding>,
    /// The pod spec as a pod profile: its settings and the file's text for quoting lines.
    #[serde(skip)]
    pub view: Profile,
}

impl Workload {
    /// `Deployment shop/web` (the namespace only when given).
    pub fn title(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// One manifest file checked.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The file as named.
    pub file: String,
    /// YAML documents in it (empty ones not counted).
    pub documents: usize,
    /// Its pod specs.
    pub workloads: Vec<Workload>,
}

impl Checked {
    /// Findings of a severity across the file.
    pub fn count(&self, severity: Severity) -> usize {
        let all = self.workloads.iter().flat_map(|w| &w.findings);
        all.filter(|f| f.severity == severity).count()
    }

    /// Whether the manifest must not be applied (errors, or warnings when denied).
    pub fn blocks(&self, deny_warnings: bool) -> bool {
        self.count(Severity::Error) > 0 || (deny_warnings && self.count(Severity::Warning) > 0)
    }
}

/// Reads a manifest file and checks every pod spec in it. Fails only when the file cannot be
/// read or is not YAML; everything else is a finding.
pub fn check_file(path: &Path, judge: &Judge) -> Result<Checked> {
    let file: Arc<str> = path.display().to_string().into();
    let text: Arc<str> = read(path, &file)?.into();
    let documents = yaml::parse_all(&text).map_err(|e| {
        let at = Location {
            file: file.clone(),
            line: e.mark.line.max(1),
            col: e.mark.col.max(1),
        };
        located(at, e.message, &text)
    })?;
    let mut found = Vec::new();
    for doc in &documents {
        pod_specs(doc, "", &mut found);
    }
    let source = Source { file, text, path };
    let workloads = found.iter().map(|f| check_pod(f, &source, judge)).collect();
    Ok(Checked {
        file: source.file.to_string(),
        documents: documents.len(),
        workloads,
    })
}

fn read(path: &Path, file: &Arc<str>) -> Result<String> {
    let cannot = |e: std::io::Error| {
        let message = format!("cannot read manifest: {e}");
        located(Location::start(file.clone()), message, "")
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        let message = format!("manifest is larger than {MAX_MANIFEST_BYTES} bytes");
        return Err(located(Location::start(file.clone()), message, ""));
    }
    String::from_utf8(bytes).map_err(|_| {
        let message = "manifest is not valid UTF-8".to_owned();
        located(Location::start(file.clone()), message, "")
    })
}

/// An error pointing into the manifest, quoting its line.
fn located(at: Location, message: String, text: &str) -> Error {
    let snippet = text
        .lines()
        .nth(at.line.saturating_sub(1))
        .map(|l| l.chars().take(200).collect());
    Error::Profile {
        at,
        message,
        help: None,
        snippet,
    }
}

/// The file being checked.
struct Source<'a> {
    file: Arc<str>,
    text: Arc<str>,
    path: &'a Path,
}

impl Source<'_> {
    fn at(&self, node: &Node) -> Location {
        Location {
            file: self.file.clone(),
            line: node.mark.line.max(1),
            col: node.mark.col.max(1),
        }
    }
}

/// A pod spec found in a document.
struct Found<'a> {
    kind: String,
    name: String,
    namespace: Option<String>,
    path: String,
    spec: &'a Node,
}

/// The value of a mapping's field.
fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    field(node, key).map(|(_, v)| v)
}

/// A mapping's field: its key node and its value node.
fn field<'a>(node: &'a Node, key: &str) -> Option<(&'a Node, &'a Node)> {
    match &node.kind {
        NodeKind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(k, v)| (k, v)),
        _ => None,
    }
}

fn text_of(node: Option<&Node>) -> Option<String> {
    node.filter(|n| !n.is_null())
        .and_then(Node::as_scalar)
        .map(str::to_owned)
}

fn items(node: Option<&Node>) -> &[Node] {
    match node.map(|n| &n.kind) {
        Some(NodeKind::Seq(items)) => items,
        _ => &[],
    }
}

/// Collects the pod specs of one document (recursing into a `List`'s items).
fn pod_specs<'a>(doc: &'a Node, prefix: &str, out: &mut Vec<Found<'a>>) {
    let Some(kind) = text_of(get(doc, "kind")) else {
        return;
    };
    if kind.ends_with("List") {
        for (i, item) in items(get(doc, "items")).iter().enumerate() {
            pod_specs(item, &format!("{prefix}items[{i}]."), out);
        }
        return;
    }
    let Some((_, path)) = POD_SPEC_PATHS.iter().find(|(k, _)| *k == kind) else {
        return;
    };
    let spec = path.iter().try_fold(doc, |node, key| get(node, key));
    let Some(spec) = spec.filter(|s| matches!(s.kind, NodeKind::Map(_))) else {
        return;
    };
    let metadata = get(doc, "metadata");
    let name = metadata.and_then(|m| text_of(get(m, "name")).or(text_of(get(m, "generateName"))));
    out.push(Found {
        kind,
        name: name.unwrap_or_else(|| "(unnamed)".into()),
        namespace: metadata.and_then(|m| text_of(get(m, "namespace"))),
        path: format!("{prefix}{}", path.join(".")),
        spec,
    });
}

/// A finding of one of this module's rules (all of them are errors).
fn finding(
    rule: &str,
    key: Option<SysctlKey>,
    at: Location,
    message: String,
    help: &str,
) -> Finding {
    Finding {
        severity: Severity::Error,
        rule: rule.to_owned(),
        key,
        at: Some(at),
        message,
        help: Some(help.to_owned()),
        sources: sources(rule),
    }
}

/// The sources [`RULES`] lists for a rule.
fn sources(rule: &str) -> Vec<String> {
    let found = RULES.iter().find(|r| r.id == rule).map(|r| r.sources);
    found
        .unwrap_or_default()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Judges one pod spec.
fn check_pod(found: &Found, source: &Source, judge: &Judge) -> Workload {
    let mut findings = Vec::new();
    let entries = read_entries(found.spec, source, &mut findings);
    misplaced_sysctls(found.spec, source, &mut findings);
    let view = pod_view(found, source, &entries);
    let mut target = judge.target.clone();
    target.child_netns = false; // `pod-not-namespaced` covers what a child namespace refuses
    let report = validate::validate(&view, judge.schema, &target);
    for f in report.findings {
        findings.push(at_value(kubelet_allowlist(f, judge.allowed), &view));
    }
    host_namespaces(found.spec, &view, &mut findings);
    findings.sort_by(|a, b| {
        let pos = |f: &Finding| f.at.as_ref().map(|l| (l.line, l.col));
        pos(a).cmp(&pos(b)).then(b.severity.cmp(&a.severity))
    });
    Workload {
        kind: found.kind.clone(),
        name: found.name.clone(),
        namespace: found.namespace.clone(),
        pod_spec: found.path.clone(),
        sysctls: entries.iter().map(|e| e.sysctl.clone()).collect(),
        findings,
        view,
    }
}

/// A finding about the value points at the value (in a manifest it is on its own line).
fn at_value(mut f: Finding, view: &Profile) -> Finding {
    let about_value =
        ["value-shape", "kernel-bounds", "recommended-bounds"].contains(&f.rule.as_str());
    if let Some(setting) = f
        .key
        .as_ref()
        .and_then(|k| view.get(k))
        .filter(|_| about_value)
    {
        f.at = Some(setting.value_at.clone());
    }
    f
}

/// The pod spec as a pod profile.
fn pod_view(found: &Found, source: &Source, entries: &[Entry]) -> Profile {
    let mut context = BTreeMap::new();
    context.insert("kubernetes_pod".to_owned(), Fact::Bool(true));
    let ports = container_ports(found.spec);
    if !ports.is_empty() {
        context.insert("listening_ports".to_owned(), Fact::Ports(ports));
    }
    let settings = entries.iter().map(|e| {
        let setting = Setting {
            key: e.key.clone(),
            value: Value::from_text(&e.sysctl.value),
            reason: None,
            source: None,
            optional: false,
            at: e.at.clone(),
            value_at: e.value_at.clone(),
            pattern: None,
        };
        (e.key.clone(), setting)
    });
    Profile {
        name: format!("{}/{}", found.kind, found.name),
        description: None,
        path: source.path.to_owned(),
        context,
        settings: settings.collect(),
        patterns: Vec::new(),
        unmatched: Vec::new(),
        fingerprint: String::new(),
        health: Default::default(),
        rollout: None,
        files: vec![PathBuf::from(source.path)],
        texts: BTreeMap::from([(source.file.clone(), source.text.clone())]),
    }
}

/// Every `containerPort` of the pod's containers.
fn container_ports(spec: &Node) -> Vec<u16> {
    let containers = ["initContainers", "containers"]
        .into_iter()
        .flat_map(|f| items(get(spec, f)));
    let mut ports: Vec<u16> = containers
        .flat_map(|c| items(get(c, "ports")))
        .filter_map(|p| text_of(get(p, "containerPort"))?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pod specs found in a stream: (kind, name, path).
    fn found(text: &str) -> Vec<(String, String, String)> {
        let docs = yaml::parse_all(text).unwrap();
        let mut out = Vec::new();
        for doc in &docs {
            pod_specs(doc, "", &mut out);
        }
        out.into_iter().map(|f| (f.kind, f.name, f.path)).collect()
    }

    #[test]
    fn pod_specs_are_found_where_each_kind_keeps_them() {
        let spec = "{securityContext: {}}";
        let cases = [
            (
                format!("kind: Pod\nmetadata: {{name: a}}\nspec: {spec}\n"),
                "spec",
            ),
            (
                format!(
                    "kind: Deployment\nmetadata: {{name: a}}\nspec: {{template: {{spec: {spec}}}}}\n"
                ),
                "spec.template.spec",
            ),
            (
                format!(
                    "kind: CronJob\nmetadata: {{name: a}}\nspec: {{jobTemplate: {{spec: {{template: {{spec: {spec}}}}}}}}}\n"
                ),
                "spec.jobTemplate.spec.template.spec",
            ),
            (
                format!("kind: PodTemplate\nmetadata: {{name: a}}\ntemplate: {{spec: {spec}}}\n"),
                "template.spec",
            ),
        ];
        for (text, path) in cases {
            let kind = text[6..].split('\n').next().unwrap().to_owned();
            assert_eq!(found(&text), [(kind, "a".into(), path.into())], "{text}");
        }
        let list = format!(
            "kind: List\nitems:\n  - kind: Service\n  - kind: Job\n    metadata: {{generateName: j-}}\n    spec: {{template: {{spec: {spec}}}}}\n"
        );
        assert_eq!(
            found(&list),
            [(
                "Job".into(),
                "j-".into(),
                "items[1].spec.template.spec".into()
            )]
        );
        let others = "kind: Service\n---\nkind: Deployment\nspec: {}\n---\n[1, 2]\n---\nkind: Pod\nspec: {}\n";
        assert_eq!(
            found(others),
            [("Pod".into(), "(unnamed)".into(), "spec".into())]
        );
    }
}
