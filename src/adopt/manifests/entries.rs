//! The `securityContext.sysctls` entries of one pod spec as the API server reads them: a name
//! it accepts, a value that is a string once the YAML is read (YAML 1.1: `30`, `yes` and `~`
//! are not), each name once, and the list at pod level only.

use super::kubelet::is_api_sysctl_name;
use super::{MALFORMED, Source, field, finding, get, items, text_of};
use crate::adopt::k8s::PodSysctl;
use crate::error::{Location, shorten};
use crate::profile::key::SysctlKey;
use crate::profile::yaml::{Node, NodeKind};
use crate::schema::finding::Finding;

/// One well-formed `sysctls` entry.
pub(super) struct Entry {
    pub(super) key: SysctlKey,
    pub(super) sysctl: PodSysctl,
    pub(super) at: Location,
    pub(super) value_at: Location,
}

/// Reads `securityContext.sysctls`, reporting entries the API server would refuse.
pub(super) fn read_entries(spec: &Node, source: &Source, out: &mut Vec<Finding>) -> Vec<Entry> {
    let list = get(spec, "securityContext").and_then(|sc| get(sc, "sysctls"));
    let mut entries: Vec<Entry> = Vec::new();
    for item in items(list) {
        let Some(entry) = read_entry(item, source, out) else {
            continue;
        };
        if let Some(first) = entries.iter().find(|e| e.key == entry.key) {
            out.push(duplicate(first, entry));
            continue;
        }
        entries.push(entry);
    }
    entries
}

/// A second entry for a sysctl: the API server refuses the same name twice; the same sysctl
/// spelt differently (`a.b` and `a/b`) passes it, and the runtime then writes one of the two.
fn duplicate(first: &Entry, again: Entry) -> Finding {
    let (name, line) = (&again.sysctl.name, first.at.line);
    let message = match first.sysctl.name == *name {
        true => {
            format!("{name} is set twice (also at line {line}): the API server refuses the pod")
        }
        false => format!(
            "{name} is set twice (also at line {line}, as {}): which value the container gets is up to the runtime",
            first.sysctl.name
        ),
    };
    finding(
        MALFORMED,
        Some(again.key),
        again.at,
        message,
        "keep one of them",
    )
}

fn read_entry(item: &Node, source: &Source, out: &mut Vec<Finding>) -> Option<Entry> {
    let (name, value) = (get(item, "name"), get(item, "value"));
    let mut refuse = |node: &Node, message: String, help: &str| {
        out.push(finding(MALFORMED, None, source.at(node), message, help));
        None
    };
    let Some(name_node) = name.filter(|n| text_of(Some(n)).is_some()) else {
        return refuse(
            item,
            "a sysctls entry without a `name`".into(),
            "write `- name: KEY` and `value: \"VALUE\"`",
        );
    };
    let name = text_of(Some(name_node)).unwrap_or_default();
    let key = match SysctlKey::parse(&name) {
        Ok(key) if is_api_sysctl_name(&name) => key,
        _ => {
            let message = format!(
                "{:?} is not a sysctl name the API server accepts",
                shorten(&name)
            );
            return refuse(
                name_node,
                message,
                "lowercase letters, digits, `-` and `_`, separated by `.` or `/`",
            );
        }
    };
    let Some(value_node) = value else {
        return refuse(
            name_node,
            format!("{name} has no `value`"),
            "write `value: \"VALUE\"` (a string)",
        );
    };
    let Some(text) = value_node
        .as_scalar()
        .filter(|_| !is_yaml_non_string(value_node))
    else {
        let message = format!(
            "{name}: the value is {}, not a string: the API server refuses the manifest",
            yaml_kind(value_node)
        );
        let help = "quote it (value: \"30\"); tuples are one string (value: \"10240 65535\")";
        return refuse(value_node, message, help);
    };
    let sysctl = PodSysctl {
        name,
        value: text.to_owned(),
    };
    Some(Entry {
        key,
        sysctl,
        at: source.at(name_node),
        value_at: source.at(value_node),
    })
}

/// Whether a node is something other than a string once Kubernetes reads the YAML (YAML 1.1:
/// plain numbers, booleans including yes/no/on/off, null; lists and mappings).
fn is_yaml_non_string(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Scalar { plain: false, .. } => false,
        NodeKind::Scalar { text, plain: true } => {
            node.is_null() || is_yaml_bool(text) || is_yaml_number(text)
        }
        _ => true,
    }
}

fn yaml_kind(node: &Node) -> &'static str {
    match &node.kind {
        NodeKind::Scalar { .. } if node.is_null() => "null",
        NodeKind::Scalar { text, .. } if is_yaml_bool(text) => "a YAML boolean",
        NodeKind::Scalar { .. } => "a YAML number",
        NodeKind::Seq(_) => "a list",
        NodeKind::Map(_) => "a mapping",
    }
}

pub(super) fn is_yaml_bool(text: &str) -> bool {
    let words = ["true", "false", "yes", "no", "on", "off", "y", "n"];
    words.iter().any(|w| {
        text == *w
            || text == w.to_uppercase()
            || text == format!("{}{}", w[..1].to_uppercase(), &w[1..])
    })
}

pub(super) fn is_yaml_number(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let radix = |prefix: &str, ok: fn(&char) -> bool| {
        body.strip_prefix(prefix)
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| ok(&c) || c == '_'))
    };
    let special = [".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN"].contains(&body);
    let decimal = body.chars().any(|c| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || "._eE+-".contains(c))
        && body.replace('_', "").parse::<f64>().is_ok();
    special
        || decimal
        || radix("0x", char::is_ascii_hexdigit)
        || radix("0o", |c| c.is_digit(8))
        || radix("0b", |c| "01".contains(*c))
}

/// `sysctls` in a container's `securityContext`: not a field there.
pub(super) fn misplaced_sysctls(spec: &Node, source: &Source, out: &mut Vec<Finding>) {
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in items(get(spec, list)) {
            let Some((sysctls, _)) =
                get(container, "securityContext").and_then(|sc| field(sc, "sysctls"))
            else {
                continue;
            };
            let name = text_of(get(container, "name")).unwrap_or_else(|| "(unnamed)".into());
            let message = format!(
                "sysctls in the securityContext of container {name}: they are pod-level only, so the API server refuses (or silently drops) them here"
            );
            let help = "move the list to the pod's spec.securityContext.sysctls";
            out.push(finding(MALFORMED, None, source.at(sysctls), message, help));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_that_kubernetes_reads_as_other_than_strings() {
        let numbers = [
            "30", "-1", "+1", "1.5", "1e3", "0x1F", "0o17", "0b101", "1_000", ".inf",
        ];
        for number in numbers {
            assert!(is_yaml_number(number), "{number}");
        }
        for text in ["10240 65535", "1.2.3", "x30", "cubic", "e", "-", "."] {
            assert!(!is_yaml_number(text), "{text}");
        }
        assert!(is_yaml_bool("yes") && is_yaml_bool("Off") && is_yaml_bool("TRUE"));
        assert!(!is_yaml_bool("yEs") && !is_yaml_bool("1"));
        let node = |text: &str| crate::profile::yaml::parse(text).unwrap().unwrap();
        assert!(is_yaml_non_string(&node("30")) && is_yaml_non_string(&node("~")));
        assert!(!is_yaml_non_string(&node("\"30\"")) && !is_yaml_non_string(&node("10240 65535")));
        assert!(is_yaml_non_string(&node("[10240, 65535]")));
    }
}
