//! The kubelet's side of pod sysctls: names compared dotted, the namespace it assigns a sysctl
//! to, its allowlist patterns (`--allowed-unsafe-sysctls`), and the two reasons it rejects a pod
//! that the API server accepted: an unsafe sysctl it does not allow, and a sysctl of a namespace
//! the pod shares with the node. The facts follow the kubelet's own tables
//! (pkg/kubelet/sysctl/namespace.go and allowlist.go); the code is sysprof's.

use serde::Serialize;

use super::{HOST_NAMESPACE, NOT_ALLOWED, finding, get, sources, text_of};
use crate::profile::Profile;
use crate::profile::yaml::Node;
use crate::schema::Severity;
use crate::schema::finding::Finding;

/// The namespace the kubelet says a sysctl belongs to (its own table, by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KubeletNs {
    /// `net.*`.
    Net,
    /// `kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`.
    Ipc,
}

pub(super) fn kubelet_namespace(dotted: &str) -> Option<KubeletNs> {
    let ipc = dotted == "kernel.sem"
        || ["kernel.shm", "kernel.msg", "fs.mqueue."]
            .iter()
            .any(|p| dotted.starts_with(p));
    match () {
        _ if ipc => Some(KubeletNs::Ipc),
        _ if dotted.starts_with("net.") => Some(KubeletNs::Net),
        _ => None,
    }
}

/// A name as the kubelet compares it: when the first separator is a slash, slashes and dots
/// trade places (`net/ipv4/conf/eth0.100/rp_filter` → `net.ipv4.conf.eth0/100.rp_filter`).
pub fn dotted(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_owned(),
    }
}

/// A segment of a sysctl name as the API server accepts it: lowercase letters, digits, `-` and
/// `_`, starting and ending with a letter or digit.
fn is_segment(s: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    alnum(s.chars().next()) && alnum(s.chars().last()) && s.chars().all(is_name_char)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

/// Whether the API server accepts `name` as a sysctl name: segments separated by `.` or `/`.
pub(super) fn is_api_sysctl_name(name: &str) -> bool {
    name.len() <= 253 && name.split(['.', '/']).all(is_segment)
}

/// Whether the kubelet accepts `text` as an allowlist pattern: a sysctl name whose last segment
/// may end in `*` in place of its last character (`net.ipv4.*`, `net.ipv4.tcp_keepalive_*`).
fn is_pattern(text: &str) -> bool {
    let (head, last) = match text.rfind(['.', '/']) {
        Some(i) => (Some(&text[..i]), &text[i + 1..]),
        None => (None, text),
    };
    let starts_alnum =
        |s: &str| s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    let last_ok = match last.strip_suffix('*') {
        Some(stem) => stem.is_empty() || (starts_alnum(stem) && stem.chars().all(is_name_char)),
        None => is_segment(last),
    };
    text.len() <= 253 && last_ok && head.is_none_or(|h| h.split(['.', '/']).all(is_segment))
}

/// One entry of the kubelet's `allowedUnsafeSysctls` / `--allowed-unsafe-sysctls`: a name, or a
/// prefix ending in `*` (`net.ipv4.*`, `kernel.shm*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UnsafePattern(String);

impl UnsafePattern {
    /// Parses a pattern the way the kubelet accepts it: a sysctl name, optionally ending in one
    /// `*`, of a namespace the kubelet knows (net.*, kernel.shm*, kernel.msg*, kernel.sem,
    /// fs.mqueue.*); anything else would keep the kubelet from starting.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        if !is_pattern(text) {
            return Err(format!(
                "{text:?} is not a sysctl name or a prefix ending in `*` (e.g. net.ipv4.*)"
            ));
        }
        let pattern = dotted(text);
        if kubelet_namespace(pattern.trim_end_matches('*')).is_none() {
            return Err(format!(
                "{text:?} is not known to the kubelet to be namespaced (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*): the kubelet refuses it"
            ));
        }
        Ok(Self(pattern))
    }

    /// Whether the pattern allows a sysctl (`dotted` form).
    pub fn matches(&self, dotted: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => dotted.starts_with(prefix),
            None => dotted == self.0,
        }
    }
}

impl std::fmt::Display for UnsafePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `pod-unsafe-sysctl` is a warning for a profile; for a pod on its way to a kubelet it is the
/// kubelet's verdict: rejected unless allowed, nothing to say when allowed.
pub(super) fn kubelet_allowlist(mut f: Finding, allowed: &[UnsafePattern]) -> Finding {
    if f.rule != "pod-unsafe-sysctl" {
        return f;
    }
    let name = f
        .key
        .as_ref()
        .map(|k| dotted(&k.to_string()))
        .unwrap_or_default();
    match allowed.iter().find(|p| p.matches(&name)) {
        Some(pattern) => {
            f.severity = Severity::Info;
            f.message = format!("{}; allowed by --allowed-unsafe {pattern}", f.message);
        }
        None => {
            f.severity = Severity::Error;
            f.rule = NOT_ALLOWED.to_owned();
            f.message = format!("{}, and --allowed-unsafe does not list it", f.message);
            f.help = Some(format!(
                "allow it on the nodes that run this pod (kubelet allowedUnsafeSysctls or --allowed-unsafe-sysctls) and pass the same list with --allowed-unsafe, or drop {name}"
            ));
            f.sources = sources(NOT_ALLOWED);
        }
    }
    f
}

/// hostNetwork / hostIPC pods cannot set sysctls of those namespaces.
pub(super) fn host_namespaces(spec: &Node, view: &Profile, out: &mut Vec<Finding>) {
    let flag = |field: &str| {
        text_of(get(spec, field)).is_some_and(|t| matches!(t.as_str(), "true" | "True" | "TRUE"))
    };
    let (host_net, host_ipc) = (flag("hostNetwork"), flag("hostIPC"));
    for setting in view.settings.values() {
        let name = dotted(&setting.key.to_string());
        let shared = match kubelet_namespace(&name) {
            Some(KubeletNs::Net) if host_net => "hostNetwork: true (the node's network namespace)",
            Some(KubeletNs::Ipc) if host_ipc => "hostIPC: true (the node's IPC namespace)",
            _ => continue,
        };
        let message = format!(
            "{name} cannot be set in a pod with {shared}: it would change the node, and the kubelet rejects the pod"
        );
        let help = "drop the sysctl, or the host namespace; node settings belong in a node profile (the DaemonSet)";
        out.push(finding(
            HOST_NAMESPACE,
            Some(setting.key.clone()),
            setting.at.clone(),
            message,
            help,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_dotted_like_the_kubelet() {
        let cases = [
            (
                "net/ipv4/conf/eth0.100/rp_filter",
                "net.ipv4.conf.eth0/100.rp_filter",
            ),
            (
                "net.ipv4.conf.eth0/100.rp_filter",
                "net.ipv4.conf.eth0/100.rp_filter",
            ),
            ("kernel.shm_rmid_forced", "kernel.shm_rmid_forced"),
        ];
        for (name, expected) in cases {
            assert_eq!(dotted(name), expected);
        }
        assert_eq!(
            kubelet_namespace("net.core.somaxconn"),
            Some(KubeletNs::Net)
        );
        assert_eq!(kubelet_namespace("kernel.msgmax"), Some(KubeletNs::Ipc));
        assert_eq!(kubelet_namespace("kernel.semx"), None);
        assert_eq!(kubelet_namespace("vm.swappiness"), None);
    }

    #[test]
    fn unsafe_patterns_follow_the_kubelet() {
        let p = |t: &str| UnsafePattern::parse(t);
        let net = p("net.ipv4.*").unwrap();
        assert!(net.matches("net.ipv4.tcp_tw_reuse") && !net.matches("net.core.somaxconn"));
        let exact = p("net.core.somaxconn").unwrap();
        assert!(exact.matches("net.core.somaxconn") && !exact.matches("net.core.somaxconn2"));
        assert!(p("kernel.shm*").unwrap().matches("kernel.shm_rmid_forced"));
        assert!(p("kernel.sem").is_ok() && p("fs.mqueue.*").is_ok());
        assert!(p("net/ipv4/*").unwrap().matches("net.ipv4.ip_forward"));
        let bad = [
            "*",
            "vm.swappiness",
            "kernel.*",
            "net.*.rp_filter",
            "net.IPv4.*",
            "",
            "net..x",
        ];
        for bad in bad {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_sysctl_names() {
        assert!(is_api_sysctl_name("net/ipv4/conf/eth0.100/rp_filter"));
        assert!(is_api_sysctl_name("net.ipv4.tcp_fin_timeout"));
        for bad in [
            "net.ipv4.",
            "Net.ipv4.x",
            "net..x",
            "net.ipv4.x-",
            "net.ipv4.x y",
            "",
        ] {
            assert!(!is_api_sysctl_name(bad), "{bad:?}");
        }
    }
}
