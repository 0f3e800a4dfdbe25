//! Cross-key, context and kernel rules.
//!
//! Data rules from `schema/rules.yaml` are interpreted here; rules that need arithmetic, sets or
//! interface semantics are written as functions below and listed in [`CODE_RULES`] so `explain`
//! can show them. A rule reads the profile, the schema and the target; it never touches the
//! kernel.

use crate::profile::key::SysctlKey;
use crate::profile::value::{Value, parse_port_list};
use crate::profile::{Fact, Profile};
use crate::schema::finding::{Finding, FindingBuilder, Target};
use crate::schema::{Condition, DataRule, Op, Scalar, Schema, Severity};

/// A rule implemented in code: id, severity, summary, sources.
pub struct CodeRule {
    /// Stable id.
    pub id: &'static str,
    /// Severity of its findings (the worst, when it has several).
    pub severity: Severity,
    /// What it checks.
    pub summary: &'static str,
    /// Where it comes from.
    pub sources: &'static [&'static str],
}

/// Every rule implemented in code (validate.rs and this module).
pub const CODE_RULES: &[CodeRule] = &[
    CodeRule {
        id: "pattern-matches-nothing",
        severity: Severity::Warning,
        summary: "a pattern key (net.ipv4.conf.*.rp_filter) matches no key of the target, so it sets nothing there",
        sources: &["sysctl.d(5)"],
    },
    CodeRule {
        id: "unknown-key",
        severity: Severity::Error,
        summary: "the key is not in the schema (did-you-mean offered), or the schema lists it as a name no kernel ever had (net.ipv4.rfc1337)",
        sources: &["schema/keys.yaml"],
    },
    CodeRule {
        id: "key-removed",
        severity: Severity::Error,
        summary: "the key no longer exists on the target kernel (tcp_tw_recycle >= 4.12, tcp_westwood >= 2.6.13)",
        sources: &["tcp(7)", "seed:002"],
    },
    CodeRule {
        id: "key-not-yet-added",
        severity: Severity::Error,
        summary: "the key does not exist yet on the target kernel",
        sources: &["schema/keys.yaml"],
    },
    CodeRule {
        id: "value-shape",
        severity: Severity::Error,
        summary: "the value does not have the key's shape (integer, enum value, tuple length, port list)",
        sources: &["schema/keys.yaml"],
    },
    CodeRule {
        id: "kernel-bounds",
        severity: Severity::Error,
        summary: "the value is outside the range the kernel accepts (the write would fail with EINVAL)",
        sources: &["kernel/sysctl.c proc_dou8vec_minmax, proc_dointvec_minmax"],
    },
    CodeRule {
        id: "uncatalogued-key",
        severity: Severity::Warning,
        summary: "a key sysprof's catalogue does not describe: the target kernel has it (or cannot be asked offline), so it is applied and the kernel's own checks guard it; an error with --strict",
        sources: &["the target's /proc/sys"],
    },
    CodeRule {
        id: "key-absent",
        severity: Severity::Error,
        summary: "a catalogued key the target does not have (a missing module, a kernel built without it, or host-only in a child network namespace)",
        sources: &["the target's /proc/sys", "schema/catalogue.yaml (kernels)"],
    },
    CodeRule {
        id: "optional-absent",
        severity: Severity::Info,
        summary: "an optional key the target does not have: apply skips it (sysctl.d's `-` prefix)",
        sources: &["sysctl.d(5)"],
    },
    CodeRule {
        id: "key-presence-unknown",
        severity: Severity::Info,
        summary: "validated offline for a kernel between or below the releases the catalogue covers, whether the key exists is not known",
        sources: &["schema/catalogue.yaml (kernels)"],
    },
    CodeRule {
        id: "kernel-bounds-hz",
        severity: Severity::Warning,
        summary: "a seconds value the kernel converts to jiffies overflows an int on kernels built with a high CONFIG_HZ (their bound is INT_MAX / HZ); validated offline, the target's HZ is unknown",
        sources: &["kernel/sysctl.c do_proc_dointvec_jiffies_conv"],
    },
    CodeRule {
        id: "read-only-key",
        severity: Severity::Error,
        summary: "the key is read-only (mode 0444 in the kernel's table, or a status file such as fs.file-nr): nothing can set it",
        sources: &[
            "the kernel's ctl_table mode",
            "schema/catalogue.yaml (read_only)",
        ],
    },
    CodeRule {
        id: "trigger-key",
        severity: Severity::Error,
        summary: "the key is a trigger (vm.drop_caches, net.ipv4.route.flush): a write performs an action, there is no state to declare, persist or roll back",
        sources: &[
            "admin-guide/sysctl/vm.rst#drop_caches",
            "schema/catalogue.yaml (trigger)",
        ],
    },
    CodeRule {
        id: "one-way-key",
        severity: Severity::Warning,
        summary: "the value cannot be undone until reboot (kernel.modules_disabled=1, kernel.kexec_load_disabled=1): apply needs --allow-irreversible and rollback leaves it in place",
        sources: &[
            "admin-guide/sysctl/kernel.rst#modules_disabled",
            "schema/catalogue.yaml (one_way)",
        ],
    },
    CodeRule {
        id: "negative-value",
        severity: Severity::Error,
        summary: "a negative value for a key whose documented range starts at zero or above (a time, size or count): the kernel may take it, but it means nothing sane",
        sources: &["schema/keys.yaml (recommended)"],
    },
    CodeRule {
        id: "recommended-bounds",
        severity: Severity::Warning,
        summary: "the value is outside the sane range documented for the key",
        sources: &["schema/keys.yaml"],
    },
    CodeRule {
        id: "noop-key",
        severity: Severity::Warning,
        summary: "the key has no effect on the target kernel (tcp_fack >= 4.15, tcp_low_latency >= 4.14)",
        sources: &["ip-sysctl.rst#tcp_fack", "ip-sysctl.rst#tcp_low_latency"],
    },
    CodeRule {
        id: "default-value",
        severity: Severity::Info,
        summary: "the value is the kernel default on the target kernel (e.g. somaxconn 4096 on >= 5.4)",
        sources: &["schema/keys.yaml"],
    },
    CodeRule {
        id: "pod-not-namespaced",
        severity: Severity::Error,
        summary: "a pod profile sets a key that is not writable in a pod's namespaces",
        sources: &["k8s:pkg/kubelet/sysctl/namespace.go", "seed:000"],
    },
    CodeRule {
        id: "pod-unsafe-sysctl",
        severity: Severity::Warning,
        summary: "a pod profile sets a namespaced key that is not on the kubelet safe list for the target version",
        sources: &["k8s:pkg/kubelet/sysctl/safe_sysctls.go"],
    },
    CodeRule {
        id: "not-writable-in-netns",
        severity: Severity::Error,
        summary: "the key is read-only or absent in a child network namespace (--netns)",
        sources: &[
            "net/netfilter/nf_conntrack_standalone.c",
            "net/core/sysctl_net_core.c",
        ],
    },
    CodeRule {
        id: "port-range-parity",
        severity: Severity::Warning,
        summary: "ip_local_port_range ends have the same parity (the kernel logs a warning; connect() prefers even ports)",
        sources: &[
            "ip-sysctl.rst#ip_local_port_range",
            "net/ipv4/sysctl_net_ipv4.c",
        ],
    },
    CodeRule {
        id: "port-range-overlap",
        severity: Severity::Warning,
        summary: "the ephemeral range covers declared listening ports or the Kubernetes NodePort range without reserving them",
        sources: &["ip-sysctl.rst#ip_local_reserved_ports", "seed:000"],
    },
    CodeRule {
        id: "port-range-capacity",
        severity: Severity::Info,
        summary: "how many new connections per second to one destination the range sustains ((ports)/60 s of TIME_WAIT)",
        sources: &["seed:002"],
    },
    CodeRule {
        id: "tuple-order",
        severity: Severity::Error,
        summary: "tcp_rmem/tcp_wmem/tcp_mem/udp_mem must be min <= default/pressure <= max (the kernel does not check)",
        sources: &["ip-sysctl.rst#tcp_rmem", "ip-sysctl.rst#tcp_mem"],
    },
    CodeRule {
        id: "tcp-mem-exceeds-ram",
        severity: Severity::Warning,
        summary: "tcp_mem is in pages: its max implies more memory than the host has",
        sources: &["ip-sysctl.rst#tcp_mem"],
    },
    CodeRule {
        id: "conntrack-max-vs-buckets",
        severity: Severity::Warning,
        summary: "nf_conntrack_max far above nf_conntrack_buckets makes long hash chains",
        sources: &["nf_conntrack-sysctl.rst#nf_conntrack_buckets", "seed:000"],
    },
    CodeRule {
        id: "conf-max-semantics",
        severity: Severity::Warning,
        summary: "a per-interface rp_filter/arp_ignore/arp_announce below conf.all has no effect: the kernel uses max(all, iface)",
        sources: &[
            "ip-sysctl.rst#rp_filter",
            "include/linux/inetdevice.h IN_DEV_MAXCONF",
        ],
    },
    CodeRule {
        id: "lvs-dr-arp",
        severity: Severity::Error,
        summary: "an LVS-DR real server needs arp_ignore >= 1 and arp_announce = 2 effective on client-facing interfaces",
        sources: &[
            "seed:004",
            "ip-sysctl.rst#arp_ignore",
            "ip-sysctl.rst#arp_announce",
        ],
    },
];

/// Seconds a TIME_WAIT socket holds its 4-tuple (TCP_TIMEWAIT_LEN, not tunable).
const TIME_WAIT_SECONDS: u32 = 60;

/// Runs every data rule and code rule.
pub fn evaluate(profile: &Profile, schema: &Schema, target: &Target, out: &mut Vec<Finding>) {
    let view = View {
        profile,
        schema,
        target,
    };
    for rule in schema.rules {
        if rule.when.iter().all(|c| view.holds(c)) {
            out.push(view.data_finding(rule));
        }
    }
    port_range(&view, out);
    tuple_order(&view, out);
    tcp_mem_ram(&view, out);
    conntrack_ratio(&view, out);
    conf_max_semantics(&view, out);
    lvs_dr_arp(&view, out);
    netns_writability(&view, out);
}

/// The profile as rules see it: effective values fall back to schema defaults.
struct View<'a> {
    profile: &'a Profile,
    schema: &'a Schema,
    target: &'a Target,
}

impl View<'_> {
    fn key(text: &str) -> Option<SysctlKey> {
        SysctlKey::parse(text).ok()
    }

    fn set(&self, key: &str) -> Option<&Value> {
        Self::key(key)
            .and_then(|k| self.profile.get(&k))
            .map(|s| &s.value)
    }

    fn effective(&self, key: &str) -> Option<Value> {
        self.set(key).cloned().or_else(|| {
            self.schema
                .lookup_text(key)?
                .default_for(self.target.kernel)
        })
    }

    fn int(&self, key: &str, index: usize) -> Option<i128> {
        self.effective(key)?.int_at(index)
    }

    fn builder(&self, key: &str) -> FindingBuilder<'_> {
        let parsed = Self::key(key);
        FindingBuilder {
            setting: parsed.as_ref().and_then(|k| self.profile.get(k)),
            key: parsed,
        }
    }

    fn holds(&self, condition: &Condition) -> bool {
        match condition {
            Condition::Set { set } => self.set(set).is_some(),
            Condition::Unset { unset } => self.set(unset).is_none(),
            Condition::Compare {
                key,
                index,
                op,
                value,
                other,
                other_index,
            } => {
                let left = self.int(key, index.unwrap_or(0));
                let right = match (value, other) {
                    (Some(v), _) => Some(i128::from(*v)),
                    (None, Some(o)) => self.int(o, other_index.unwrap_or(0)),
                    (None, None) => None,
                };
                matches!((left, right), (Some(a), Some(b)) if op.holds(a, b))
            }
            Condition::Context { context, is } => self.context_is(context, is),
            Condition::Kernel { kernel } => kernel.op.holds(self.target.kernel, kernel.version),
            Condition::K8s { k8s } => self
                .target
                .k8s
                .is_some_and(|v| k8s.op.holds(v, k8s.version)),
        }
    }

    fn context_is(&self, name: &str, expected: &Scalar) -> bool {
        match (self.profile.context.get(name), expected) {
            (None, Scalar::Bool(b)) => !b,
            (Some(Fact::Bool(a)), Scalar::Bool(b)) => a == b,
            (Some(Fact::Text(a)), Scalar::Str(b)) => a == b,
            _ => false,
        }
    }

    fn data_finding(&self, rule: &DataRule) -> Finding {
        let shown = self
            .effective(rule.key)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let fill = |text: &str| {
            text.replace("{value}", &shown)
                .replace("{kernel}", &self.target.kernel.to_string())
        };
        self.builder(rule.key).finding(
            rule.severity,
            rule.id,
            fill(rule.message),
            Some(fill(rule.help)),
            rule.sources,
        )
    }
}

/// The sources `CODE_RULES` lists for a code rule.
pub(crate) fn sources(rule: &str) -> Vec<String> {
    CODE_RULES
        .iter()
        .find(|r| r.id == rule)
        .map(|r| r.sources.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

const PORT_RANGE: &str = "net.ipv4.ip_local_port_range";

fn port_range(view: &View, out: &mut Vec<Finding>) {
    let Some(range) = view.set(PORT_RANGE) else {
        return;
    };
    let (Some(low), Some(high)) = (range.int_at(0), range.int_at(1)) else {
        return;
    };
    if low > high {
        return;
    }
    let b = view.builder(PORT_RANGE);
    if low % 2 == high % 2 {
        let message = format!(
            "ip_local_port_range {low} {high}: both ends are {}; the kernel logs \"prefer different parity\": connect() takes even ports and bind() odd ones, so one side gets one port fewer",
            if low % 2 == 0 { "even" } else { "odd" }
        );
        out.push(b.finding(
            Severity::Warning,
            "port-range-parity",
            message,
            Some(format!("use {low} {}", high - 1)),
            &sources("port-range-parity"),
        ));
    }
    let reserved = reserved_ports(view);
    let is_reserved = |p: i128| {
        reserved
            .iter()
            .any(|&(l, h)| (l as i128..=h as i128).contains(&p))
    };
    let mut exposed: Vec<String> = Vec::new();
    if let Some(Fact::Ports(ports)) = view.profile.context.get("listening_ports") {
        let inside = ports
            .iter()
            .map(|&p| i128::from(p))
            .filter(|p| (low..=high).contains(p) && !is_reserved(*p));
        exposed.extend(inside.map(|p| format!("listening port {p}")));
    }
    if view.profile.fact("kubernetes_node") {
        let nodeport = view
            .profile
            .fact_text("nodeport_range")
            .unwrap_or("30000-32767");
        if let Some(&(nl, nh)) = parse_port_list(nodeport).as_deref().and_then(|r| r.first()) {
            // Only the overlap with the ephemeral range matters; it is at most 65535 ports long
            // however wide a (possibly hostile) nodeport_range is.
            let overlap = i128::from(nl).max(low)..=i128::from(nh).min(high);
            if !overlap.is_empty() && !overlap.clone().all(is_reserved) {
                exposed.push(format!("the NodePort range {nl}-{nh}"));
            }
        }
    }
    if !exposed.is_empty() {
        let message = format!(
            "ip_local_port_range {low}-{high} covers {}; an outgoing connection can take the port and the service fails to bind",
            exposed.join(", ")
        );
        let help = "list those ports in net.ipv4.ip_local_reserved_ports, or move the range".into();
        out.push(b.finding(
            Severity::Warning,
            "port-range-overlap",
            message,
            Some(help),
            &sources("port-range-overlap"),
        ));
    }
    let reserved_inside: i128 = reserved
        .iter()
        .map(|&(l, h)| (i128::from(h).min(high) - i128::from(l).max(low) + 1).max(0))
        .sum();
    let ports = high - low + 1 - reserved_inside;
    let message = format!(
        "{ports} ephemeral ports sustain about {} new connections/s to one destination address and port ({ports} / {TIME_WAIT_SECONDS} s of TIME_WAIT)",
        ports / i128::from(TIME_WAIT_SECONDS)
    );
    let help = "beyond that, add destination addresses or ports, or reuse connections".into();
    out.push(b.finding(
        Severity::Info,
        "port-range-capacity",
        message,
        Some(help),
        &sources("port-range-capacity"),
    ));
}

fn reserved_ports(view: &View) -> Vec<(u32, u32)> {
    let reserved = view
        .effective("net.ipv4.ip_local_reserved_ports")
        .unwrap_or_default();
    reserved
        .tokens()
        .first()
        .and_then(|t| parse_port_list(t))
        .unwrap_or_default()
}

fn tuple_order(view: &View, out: &mut Vec<Finding>) {
    for key in [
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_mem",
        "net.ipv4.udp_mem",
    ] {
        let Some(value) = view.set(key) else { continue };
        let numbers: Vec<i128> = (0..3).filter_map(|i| value.int_at(i)).collect();
        if numbers.len() == 3 && !(numbers[0] <= numbers[1] && numbers[1] <= numbers[2]) {
            let message = format!(
                "{key} {value} is not ordered min <= default <= max; the kernel accepts it and behaves oddly"
            );
            out.push(view.builder(key).finding(
                Severity::Error,
                "tuple-order",
                message,
                Some("order the three values".into()),
                &sources("tuple-order"),
            ));
        }
    }
}

fn tcp_mem_ram(view: &View, out: &mut Vec<Finding>) {
    let (Some(value), Some(mem)) = (view.set("net.ipv4.tcp_mem"), view.target.mem_bytes) else {
        return;
    };
    let Some(max_pages) = value.int_at(2) else {
        return;
    };
    let bytes = max_pages.saturating_mul(i128::from(view.target.page_size));
    if bytes > i128::from(mem) {
        let message = format!(
            "tcp_mem max {max_pages} is in pages: {} GiB with {} KiB pages, more than the host's {} GiB",
            bytes >> 30,
            view.target.page_size / 1024,
            mem >> 30
        );
        let help = "tcp_mem counts pages, not bytes; divide byte figures by the page size".into();
        out.push(view.builder("net.ipv4.tcp_mem").finding(
            Severity::Warning,
            "tcp-mem-exceeds-ram",
            message,
            Some(help),
            &sources("tcp-mem-exceeds-ram"),
        ));
    }
}

fn conntrack_ratio(view: &View, out: &mut Vec<Finding>) {
    const MAX: &str = "net.netfilter.nf_conntrack_max";
    let (Some(max), Some(buckets)) = (
        view.set(MAX).and_then(Value::as_int),
        view.int("net.netfilter.nf_conntrack_buckets", 0),
    ) else {
        return;
    };
    if buckets > 0 && max > 8 * buckets {
        let message = format!(
            "nf_conntrack_max {max} is {}x nf_conntrack_buckets {buckets}: lookups walk long hash chains",
            max / buckets
        );
        let help = "raise net.netfilter.nf_conntrack_buckets to at least max/8 (writing buckets does not change max)".into();
        out.push(view.builder(MAX).finding(
            Severity::Warning,
            "conntrack-max-vs-buckets",
            message,
            Some(help),
            &sources("conntrack-max-vs-buckets"),
        ));
    }
}

/// Interfaces named in `net.ipv4.conf.IFACE.<leaf>` settings, with values, excluding all/default.
fn per_interface<'a>(
    view: &'a View,
    leaf: &'a str,
) -> impl Iterator<Item = (&'a SysctlKey, i128)> + 'a {
    view.profile
        .settings
        .iter()
        .filter_map(move |(key, setting)| {
            let c = key.components();
            let per_iface = c.len() == 5
                && c[..3] == ["net", "ipv4", "conf"]
                && c[4] == leaf
                && c[3] != "all"
                && c[3] != "default";
            per_iface
                .then(|| setting.value.as_int().map(|v| (key, v)))
                .flatten()
        })
}

fn conf_max_semantics(view: &View, out: &mut Vec<Finding>) {
    for leaf in ["rp_filter", "arp_ignore", "arp_announce"] {
        let all = view
            .int(&format!("net.ipv4.conf.all.{leaf}"), 0)
            .unwrap_or(0);
        for (key, value) in per_interface(view, leaf) {
            if value < all {
                let message = format!(
                    "{key} = {value} has no effect while net.ipv4.conf.all.{leaf} = {all}: the kernel uses the maximum of the two"
                );
                let help = format!("lower net.ipv4.conf.all.{leaf} too, or drop {key}");
                out.push(view.builder(&key.to_string()).finding(
                    Severity::Warning,
                    "conf-max-semantics",
                    message,
                    Some(help),
                    &sources("conf-max-semantics"),
                ));
            }
        }
    }
}

fn lvs_dr_arp(view: &View, out: &mut Vec<Finding>) {
    if !view.profile.fact("lvs_dr_real_server") {
        return;
    }
    for (leaf, wanted, op) in [("arp_ignore", 1, Op::Ge), ("arp_announce", 2, Op::Eq)] {
        let all_key = format!("net.ipv4.conf.all.{leaf}");
        let all = view.int(&all_key, 0).unwrap_or(0);
        if op.holds(all, wanted) {
            continue;
        }
        let others: Vec<String> = per_interface(view, leaf)
            .filter(|(k, v)| k.components()[3] != "lo" && op.holds(*v, wanted))
            .map(|(k, _)| k.components()[3].clone())
            .collect();
        let (severity, message) = if others.is_empty() {
            (
                Severity::Error,
                format!(
                    "LVS-DR real server without {leaf} {} {wanted} on its client-facing interfaces: it answers ARP for the VIP and steals traffic from the director",
                    if op == Op::Eq { "=" } else { ">=" }
                ),
            )
        } else {
            (
                Severity::Warning,
                format!(
                    "{leaf} is set only on {}; other interfaces still answer ARP for the VIP (effective value is max(all, iface))",
                    others.join(", ")
                ),
            )
        };
        let help = format!(
            "set {all_key} = {wanted} (setting it only on lo does nothing for ARP arriving on eth0)"
        );
        let mut finding = view.builder(&all_key).finding(
            severity,
            "lvs-dr-arp",
            message,
            Some(help),
            &sources("lvs-dr-arp"),
        );
        if finding.at.is_none() {
            finding.at = view.profile.settings.values().next().map(|s| s.at.clone());
        }
        out.push(finding);
    }
}

fn netns_writability(view: &View, out: &mut Vec<Finding>) {
    // A pod profile gets `pod-not-namespaced` for the same keys, with the pod's remedy.
    if !view.target.child_netns || view.profile.fact("kubernetes_pod") {
        return;
    }
    for setting in view.profile.settings.values() {
        let Some(spec) = view.schema.lookup(&setting.key) else {
            continue;
        };
        use crate::schema::Scope;
        let what = match spec.scope_of(setting.key.components(), view.target.kernel) {
            Scope::RoInChild => {
                "read-only in a child network namespace; it can only be set on the host"
            }
            Scope::InitOnly => {
                "absent in a child network namespace; it can only be set on the host"
            }
            Scope::Global => {
                "not namespaced: writing it from a namespace would change the whole host"
            }
            _ => continue,
        };
        {
            let message = format!("{} is {what}", setting.key);
            let b = FindingBuilder {
                setting: Some(setting),
                key: None,
            };
            out.push(b.finding(
                Severity::Error,
                "not-writable-in-netns",
                message,
                Some("drop it from profiles applied with --netns".into()),
                &sources("not-writable-in-netns"),
            ));
        }
    }
}
