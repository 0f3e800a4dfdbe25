//! Every rule, data (`schema/rules.yaml`) and code (`rules::CODE_RULES`), through the real binary:
//! a profile that triggers it and a near miss that does not, with the finding's severity and
//! position checked. Then the seeds' own bad configurations, the shipped profiles, and the size
//! and sourcing of the schema.

mod common;

// Every case here only validates: the sandboxes read the host's /proc/sys to learn which keys
// exist (the kernel is the authority on that) and never write it.

use std::collections::BTreeSet;

use common::{Netns, Run, Sandbox, repo};
use serde_json::Value as Json;
use sysprof::schema::rules::CODE_RULES;
use sysprof::schema::{Schema, Severity};

/// Stands for the name of a throwaway network namespace in a case's flags.
const NETNS: &str = "<netns>";

/// One profile of a case: validate flags, context facts and sysctls (one YAML line each).
struct Profile {
    args: &'static [&'static str],
    context: &'static [&'static str],
    sysctls: &'static [&'static str],
}

/// A rule, the key its finding points at, a profile that triggers it and one that does not.
struct Case {
    rule: &'static str,
    severity: Severity,
    at: &'static str,
    hit: Profile,
    miss: Profile,
}

const fn p(
    args: &'static [&'static str],
    context: &'static [&'static str],
    sysctls: &'static [&'static str],
) -> Profile {
    Profile {
        args,
        context,
        sysctls,
    }
}

const K49: &[&str] = &["--kernel", "4.9"];
const NONE: &[&str] = &[];

use Severity::{Error, Info, Warning};

const CASES: &[Case] = &[
    // ---- data rules (schema/rules.yaml)
    Case {
        rule: "tw-recycle-nat",
        severity: Error,
        at: "net.ipv4.tcp_tw_recycle",
        hit: p(
            K49,
            &["nat: true"],
            &["net.ipv4.tcp_tw_recycle: 1", "net.ipv4.tcp_timestamps: 1"],
        ),
        miss: p(
            K49,
            &["nat: true"],
            &["net.ipv4.tcp_tw_recycle: 1", "net.ipv4.tcp_timestamps: 0"],
        ),
    },
    Case {
        rule: "tw-recycle-without-nat",
        severity: Warning,
        at: "net.ipv4.tcp_tw_recycle",
        hit: p(K49, &["nat: false"], &["net.ipv4.tcp_tw_recycle: 1"]),
        miss: p(
            &["--kernel", "4.12"],
            &["nat: false"],
            &["net.ipv4.tcp_tw_recycle: 1"],
        ),
    },
    Case {
        rule: "pod-tw-reuse",
        severity: Error,
        at: "net.ipv4.tcp_tw_reuse",
        hit: p(
            NONE,
            &["kubernetes_pod: true"],
            &["net.ipv4.tcp_tw_reuse: 1"],
        ),
        miss: p(
            NONE,
            &["kubernetes_pod: true"],
            &["net.ipv4.tcp_tw_reuse: 0"],
        ),
    },
    Case {
        rule: "pod-tw-recycle",
        severity: Error,
        at: "net.ipv4.tcp_tw_recycle",
        hit: p(
            NONE,
            &["kubernetes_pod: true"],
            &["net.ipv4.tcp_tw_recycle: 0"],
        ),
        miss: p(
            NONE,
            &["kubernetes_pod: false"],
            &["net.ipv4.tcp_tw_recycle: 0"],
        ),
    },
    Case {
        rule: "tw-reuse-without-timestamps",
        severity: Warning,
        at: "net.ipv4.tcp_tw_reuse",
        hit: p(
            NONE,
            &[],
            &["net.ipv4.tcp_tw_reuse: 1", "net.ipv4.tcp_timestamps: 0"],
        ),
        miss: p(
            NONE,
            &[],
            &["net.ipv4.tcp_tw_reuse: 1", "net.ipv4.tcp_timestamps: 1"],
        ),
    },
    Case {
        rule: "timestamps-off",
        severity: Warning,
        at: "net.ipv4.tcp_timestamps",
        hit: p(NONE, &[], &["net.ipv4.tcp_timestamps: 0"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_timestamps: 1"]),
    },
    Case {
        rule: "max-tw-buckets-lowered",
        severity: Warning,
        at: "net.ipv4.tcp_max_tw_buckets",
        hit: p(NONE, &[], &["net.ipv4.tcp_max_tw_buckets: 32767"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_max_tw_buckets: 32768"]),
    },
    Case {
        rule: "fin-timeout-very-low",
        severity: Warning,
        at: "net.ipv4.tcp_fin_timeout",
        hit: p(NONE, &[], &["net.ipv4.tcp_fin_timeout: 2"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_fin_timeout: 3"]),
    },
    Case {
        rule: "port-range-below-unprivileged",
        severity: Error,
        at: "net.ipv4.ip_local_port_range",
        hit: p(NONE, &[], &["net.ipv4.ip_local_port_range: [1000, 60999]"]),
        miss: p(
            NONE,
            &[],
            &[
                "net.ipv4.ip_local_port_range: [1000, 60999]",
                "net.ipv4.ip_unprivileged_port_start: 1000",
            ],
        ),
    },
    Case {
        rule: "port-range-inverted",
        severity: Error,
        at: "net.ipv4.ip_local_port_range",
        hit: p(NONE, &[], &["net.ipv4.ip_local_port_range: [60999, 32768]"]),
        miss: p(NONE, &[], &["net.ipv4.ip_local_port_range: [32768, 60999]"]),
    },
    Case {
        rule: "abort-on-overflow",
        severity: Warning,
        at: "net.ipv4.tcp_abort_on_overflow",
        hit: p(NONE, &[], &["net.ipv4.tcp_abort_on_overflow: 1"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_abort_on_overflow: 0"]),
    },
    Case {
        rule: "syncookies-off-server",
        severity: Warning,
        at: "net.ipv4.tcp_syncookies",
        hit: p(NONE, &["server: true"], &["net.ipv4.tcp_syncookies: 0"]),
        miss: p(NONE, &["server: false"], &["net.ipv4.tcp_syncookies: 0"]),
    },
    Case {
        rule: "syn-backlog-with-syncookies",
        severity: Info,
        at: "net.ipv4.tcp_max_syn_backlog",
        hit: p(NONE, &[], &["net.ipv4.tcp_max_syn_backlog: 4096"]),
        miss: p(
            NONE,
            &[],
            &[
                "net.ipv4.tcp_max_syn_backlog: 4096",
                "net.ipv4.tcp_syncookies: 0",
            ],
        ),
    },
    Case {
        rule: "somaxconn-below-syn-backlog",
        severity: Info,
        at: "net.core.somaxconn",
        hit: p(
            NONE,
            &[],
            &[
                "net.core.somaxconn: 1024",
                "net.ipv4.tcp_max_syn_backlog: 4096",
            ],
        ),
        miss: p(
            NONE,
            &[],
            &[
                "net.core.somaxconn: 8192",
                "net.ipv4.tcp_max_syn_backlog: 4096",
            ],
        ),
    },
    Case {
        rule: "conntrack-timeout-below-keepalive",
        severity: Warning,
        at: "net.netfilter.nf_conntrack_tcp_timeout_established",
        hit: p(
            NONE,
            &[],
            &["net.netfilter.nf_conntrack_tcp_timeout_established: 3600"],
        ),
        miss: p(
            NONE,
            &[],
            &[
                "net.netfilter.nf_conntrack_tcp_timeout_established: 3600",
                "net.ipv4.tcp_keepalive_time: 600",
            ],
        ),
    },
    Case {
        rule: "syn-retries-outside-datacenter",
        severity: Warning,
        at: "net.ipv4.tcp_syn_retries",
        hit: p(NONE, &[], &["net.ipv4.tcp_syn_retries: 2"]),
        miss: p(
            NONE,
            &["datacenter_only: true"],
            &["net.ipv4.tcp_syn_retries: 2"],
        ),
    },
    // ---- code rules (src/validate.rs, src/rules.rs)
    Case {
        rule: "unknown-key",
        severity: Error,
        at: "net.ipv4.tcp_fin_timout",
        hit: p(NONE, &[], &["net.ipv4.tcp_fin_timout: 30"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_fin_timeout: 30"]),
    },
    Case {
        rule: "key-removed",
        severity: Error,
        at: "net.ipv4.tcp_tw_recycle",
        hit: p(&["--kernel", "4.12"], &[], &["net.ipv4.tcp_tw_recycle: 0"]),
        miss: p(&["--kernel", "4.11"], &[], &["net.ipv4.tcp_tw_recycle: 0"]),
    },
    Case {
        rule: "key-not-yet-added",
        severity: Error,
        at: "net.ipv4.tcp_tw_reuse_delay",
        hit: p(
            &["--kernel", "6.12"],
            &[],
            &["net.ipv4.tcp_tw_reuse_delay: 500"],
        ),
        miss: p(
            &["--kernel", "6.13"],
            &[],
            &["net.ipv4.tcp_tw_reuse_delay: 500"],
        ),
    },
    Case {
        rule: "value-shape",
        severity: Error,
        at: "net.ipv4.tcp_rmem",
        hit: p(NONE, &[], &["net.ipv4.tcp_rmem: [4096, 131072]"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_rmem: [4096, 131072, 6291456]"]),
    },
    Case {
        rule: "kernel-bounds",
        severity: Error,
        at: "net.ipv4.tcp_syn_retries",
        hit: p(NONE, &[], &["net.ipv4.tcp_syn_retries: 128"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_syn_retries: 127"]),
    },
    Case {
        rule: "uncatalogued-key",
        severity: Warning,
        at: "dev.sysprofx.knob",
        hit: p(&["--kernel", "6.1"], &[], &["dev.sysprofx.knob: 1"]),
        miss: p(&["--kernel", "6.1"], &[], &["net.ipv4.tcp_dsack: 1"]),
    },
    Case {
        rule: "key-absent",
        severity: Error,
        at: "net.ipv4.tcp_shrink_window",
        hit: p(
            &["--kernel", "5.10"],
            &[],
            &["net.ipv4.tcp_shrink_window: 1"],
        ),
        miss: p(
            &["--kernel", "6.1"],
            &[],
            &["net.ipv4.tcp_shrink_window: 1"],
        ),
    },
    Case {
        rule: "optional-absent",
        severity: Info,
        at: "net.ipv4.tcp_shrink_window",
        hit: p(
            &["--kernel", "5.10"],
            &[],
            &["net.ipv4.tcp_shrink_window: {value: 1, optional: true}"],
        ),
        miss: p(
            &["--kernel", "6.1"],
            &[],
            &["net.ipv4.tcp_shrink_window: {value: 1, optional: true}"],
        ),
    },
    Case {
        rule: "key-presence-unknown",
        severity: Info,
        at: "net.ipv4.tcp_dsack",
        hit: p(&["--kernel", "5.4"], &[], &["net.ipv4.tcp_dsack: 1"]),
        miss: p(&["--kernel", "5.10"], &[], &["net.ipv4.tcp_dsack: 1"]),
    },
    Case {
        rule: "kernel-bounds-hz",
        severity: Warning,
        at: "net.ipv4.tcp_keepalive_time",
        hit: p(
            &["--kernel", "6.1"],
            &[],
            &["net.ipv4.tcp_keepalive_time: 9000000"],
        ),
        miss: p(
            &["--kernel", "6.1"],
            &[],
            &["net.ipv4.tcp_keepalive_time: 2000000"],
        ),
    },
    Case {
        rule: "read-only-key",
        severity: Error,
        at: "fs.aio-nr",
        hit: p(NONE, &[], &["fs.aio-nr: 0"]),
        miss: p(NONE, &[], &["fs.aio-max-nr: 1048576"]),
    },
    Case {
        rule: "trigger-key",
        severity: Error,
        at: "vm.drop_caches",
        hit: p(NONE, &[], &["vm.drop_caches: 3"]),
        miss: p(NONE, &[], &["vm.swappiness: 10"]),
    },
    Case {
        rule: "one-way-key",
        severity: Warning,
        at: "kernel.modules_disabled",
        hit: p(&["--kernel", "6.1"], &[], &["kernel.modules_disabled: 1"]),
        miss: p(
            &["--kernel", "6.1"],
            &[],
            &["kernel.kexec_load_disabled: 0"],
        ),
    },
    Case {
        rule: "pattern-matches-nothing",
        severity: Warning,
        at: "net.ipv4.conf.nosuch*.rp_filter",
        hit: p(NONE, &[], &["net.ipv4.conf.nosuch*.rp_filter: 1"]),
        miss: p(NONE, &[], &["net.ipv4.conf.*.rp_filter: 1"]),
    },
    Case {
        rule: "negative-value",
        severity: Error,
        at: "net.ipv4.tcp_fin_timeout",
        hit: p(NONE, &[], &["net.ipv4.tcp_fin_timeout: -1"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_fin_timeout: 1"]),
    },
    Case {
        rule: "recommended-bounds",
        severity: Warning,
        at: "net.ipv4.tcp_retries2",
        hit: p(NONE, &[], &["net.ipv4.tcp_retries2: 7"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_retries2: 8"]),
    },
    Case {
        rule: "noop-key",
        severity: Warning,
        at: "net.ipv4.tcp_fack",
        hit: p(&["--kernel", "4.15"], &[], &["net.ipv4.tcp_fack: 1"]),
        miss: p(&["--kernel", "4.14"], &[], &["net.ipv4.tcp_fack: 1"]),
    },
    Case {
        rule: "default-value",
        severity: Info,
        at: "net.core.somaxconn",
        hit: p(&["--kernel", "5.4"], &[], &["net.core.somaxconn: 4096"]),
        miss: p(&["--kernel", "5.3"], &[], &["net.core.somaxconn: 4096"]),
    },
    Case {
        rule: "pod-not-namespaced",
        severity: Error,
        at: "vm.swappiness",
        hit: p(NONE, &["kubernetes_pod: true"], &["vm.swappiness: 10"]),
        miss: p(NONE, &["kubernetes_pod: false"], &["vm.swappiness: 10"]),
    },
    Case {
        rule: "pod-unsafe-sysctl",
        severity: Warning,
        at: "net.ipv4.tcp_fin_timeout",
        hit: p(
            &["--k8s", "1.28"],
            &["kubernetes_pod: true"],
            &["net.ipv4.tcp_fin_timeout: 30"],
        ),
        miss: p(
            &["--k8s", "1.29"],
            &["kubernetes_pod: true"],
            &["net.ipv4.tcp_fin_timeout: 30"],
        ),
    },
    Case {
        rule: "not-writable-in-netns",
        severity: Error,
        at: "net.core.rmem_max",
        hit: p(
            &["--netns", NETNS],
            &[],
            &["net.core.somaxconn: 8192", "net.core.rmem_max: 8388608"],
        ),
        miss: p(&["--netns", NETNS], &[], &["net.core.somaxconn: 8192"]),
    },
    Case {
        rule: "port-range-parity",
        severity: Warning,
        at: "net.ipv4.ip_local_port_range",
        hit: p(NONE, &[], &["net.ipv4.ip_local_port_range: [32768, 61000]"]),
        miss: p(NONE, &[], &["net.ipv4.ip_local_port_range: [32768, 60999]"]),
    },
    Case {
        rule: "port-range-overlap",
        severity: Warning,
        at: "net.ipv4.ip_local_port_range",
        hit: p(
            NONE,
            &["listening_ports: [8080, 40000]"],
            &["net.ipv4.ip_local_port_range: [32768, 60999]"],
        ),
        miss: p(
            NONE,
            &["listening_ports: [8080, 40000]"],
            &[
                "net.ipv4.ip_local_port_range: [32768, 60999]",
                "net.ipv4.ip_local_reserved_ports: \"40000\"",
            ],
        ),
    },
    Case {
        rule: "port-range-capacity",
        severity: Info,
        at: "net.ipv4.ip_local_port_range",
        hit: p(NONE, &[], &["net.ipv4.ip_local_port_range: [32768, 60999]"]),
        miss: p(NONE, &[], &["net.ipv4.ip_local_port_range: [60999, 32768]"]),
    },
    Case {
        rule: "tuple-order",
        severity: Error,
        at: "net.ipv4.tcp_rmem",
        hit: p(NONE, &[], &["net.ipv4.tcp_rmem: [4096, 131072, 65536]"]),
        miss: p(NONE, &[], &["net.ipv4.tcp_rmem: [4096, 131072, 131072]"]),
    },
    Case {
        rule: "tcp-mem-exceeds-ram",
        severity: Warning,
        at: "net.ipv4.tcp_mem",
        hit: p(
            NONE,
            &[],
            &["net.ipv4.tcp_mem: [1000000000, 2000000000, 3000000000]"],
        ),
        miss: p(NONE, &[], &["net.ipv4.tcp_mem: [1000, 2000, 3000]"]),
    },
    Case {
        rule: "conntrack-max-vs-buckets",
        severity: Warning,
        at: "net.netfilter.nf_conntrack_max",
        hit: p(
            NONE,
            &[],
            &[
                "net.netfilter.nf_conntrack_max: 1048577",
                "net.netfilter.nf_conntrack_buckets: 131072",
            ],
        ),
        miss: p(
            NONE,
            &[],
            &[
                "net.netfilter.nf_conntrack_max: 1048576",
                "net.netfilter.nf_conntrack_buckets: 131072",
            ],
        ),
    },
    Case {
        rule: "conf-max-semantics",
        severity: Warning,
        at: "net.ipv4.conf.eth0.rp_filter",
        hit: p(
            NONE,
            &[],
            &[
                "net.ipv4.conf.all.rp_filter: 1",
                "net.ipv4.conf.eth0.rp_filter: 0",
            ],
        ),
        miss: p(
            NONE,
            &[],
            &[
                "net.ipv4.conf.all.rp_filter: 1",
                "net.ipv4.conf.eth0.rp_filter: 2",
            ],
        ),
    },
    Case {
        rule: "lvs-dr-arp",
        severity: Error,
        at: "net.ipv4.conf.all.arp_announce",
        hit: p(
            NONE,
            &["lvs_dr_real_server: true"],
            &[
                "net.ipv4.conf.all.arp_ignore: 1",
                "net.ipv4.conf.all.arp_announce: 1",
            ],
        ),
        miss: p(
            NONE,
            &["lvs_dr_real_server: true"],
            &[
                "net.ipv4.conf.all.arp_ignore: 1",
                "net.ipv4.conf.all.arp_announce: 2",
            ],
        ),
    },
];

/// Renders a profile; the sysctls come after the context so every key has a distinct line.
fn yaml(name: &str, profile: &Profile) -> String {
    let mut text = format!("version: 1\nname: {name}\n");
    if !profile.context.is_empty() {
        text.push_str("context:\n");
        profile
            .context
            .iter()
            .for_each(|line| text.push_str(&format!("  {line}\n")));
    }
    text.push_str("sysctls:\n");
    profile
        .sysctls
        .iter()
        .for_each(|line| text.push_str(&format!("  {line}\n")));
    text
}

/// The 1-based line of `key:` in `text`.
fn line_of(text: &str, key: &str) -> usize {
    let prefix = format!("  {key}:");
    text.lines()
        .position(|l| l.starts_with(&prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{key} not in\n{text}"))
}

/// A validated profile: the exit code and its findings.
struct Outcome {
    path: String,
    text: String,
    run: Run,
    findings: Vec<Json>,
}

impl Outcome {
    fn of(&self, rule: &str) -> Vec<&Json> {
        self.findings.iter().filter(|f| f["rule"] == rule).collect()
    }

    fn show(&self) -> String {
        format!(
            "--- {}\n{}--- exit {}\n{}{}",
            self.path, self.text, self.run.code, self.run.stdout, self.run.stderr
        )
    }
}

/// Writes the profile into the sandbox and validates it with `--format json` and `args`.
fn validate(sb: &Sandbox, file: &str, text: &str, args: &[&str]) -> Outcome {
    let path = sb.file(file, text).display().to_string();
    let mut all = vec!["validate", path.as_str(), "--format", "json"];
    all.extend_from_slice(args);
    let run = sb.run(&all);
    let json = run.json();
    let profile = &json["profiles"][0];
    assert!(
        profile.get("error").is_none(),
        "{file} did not load: {}\n{text}",
        run.stdout
    );
    let findings = profile["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {}", run.stdout))
        .clone();
    Outcome {
        path,
        text: text.to_owned(),
        run,
        findings,
    }
}

/// Every rule id the project declares: data rules from the schema files, code rules from the crate.
fn declared_rules() -> Vec<(String, Severity)> {
    let schema = Schema::from_dir(&repo().join("schema")).expect("schema/ loads");
    let data = schema.rules.iter().map(|r| (r.id.to_owned(), r.severity));
    data.chain(CODE_RULES.iter().map(|r| (r.id.to_owned(), r.severity)))
        .collect()
}

#[test]
fn the_table_covers_every_rule_exactly_once_with_its_declared_severity() {
    let declared = declared_rules();
    let ids: BTreeSet<&str> = declared.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids.len(),
        declared.len(),
        "a rule id is declared twice: {declared:?}"
    );
    let mut tested = BTreeSet::new();
    for case in CASES {
        assert!(tested.insert(case.rule), "{} has two cases", case.rule);
    }
    let untested: Vec<_> = ids.difference(&tested).collect();
    let unknown: Vec<_> = tested.difference(&ids).collect();
    assert!(
        untested.is_empty(),
        "rules without a trigger/near-miss case in tests/rules.rs: {untested:?}"
    );
    assert!(
        unknown.is_empty(),
        "cases for rules that no longer exist: {unknown:?}"
    );
    for (id, severity) in &declared {
        let case = CASES.iter().find(|c| c.rule == id).unwrap();
        assert_eq!(
            case.severity, *severity,
            "{id}: the case expects a different severity than declared"
        );
    }
}

#[test]
fn every_rule_fires_on_its_trigger_at_the_key_and_not_on_its_near_miss() {
    let sb = Sandbox::host_readonly();
    let ns = Netns::create();
    let mut failures = Vec::new();
    for case in CASES {
        let needs_ns = [&case.hit, &case.miss]
            .iter()
            .any(|p| p.args.contains(&NETNS));
        let ns_name = match (&ns, needs_ns) {
            (Some(ns), _) => ns.name.clone(),
            (None, false) => String::new(),
            (None, true) => {
                eprintln!(
                    "\n!!!!!!!!!! RULE CASE NOT RUN: {} needs a network namespace !!!!!!!!!!\n",
                    case.rule
                );
                continue;
            }
        };
        let args = |p: &Profile| {
            p.args
                .iter()
                .map(|a| if *a == NETNS { ns_name.as_str() } else { a })
                .collect::<Vec<_>>()
        };

        let text = yaml(&format!("{}-hit", case.rule), &case.hit);
        let hit = validate(
            &sb,
            &format!("{}-hit.yaml", case.rule),
            &text,
            &args(&case.hit),
        );
        let found = hit.of(case.rule);
        let (line, severity) = (line_of(&text, case.at), case.severity.to_string());
        let exact = found.iter().any(|f| {
            // A finding about a pattern key has no single key: its message names the pattern.
            let on_key = f["key"] == case.at
                || f["key"].is_null()
                    && f["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(case.at));
            f["severity"] == severity.as_str()
                && on_key
                && f["at"]["file"] == hit.path.as_str()
                && f["at"]["line"] == line
                && f["at"]["col"] == 3
        });
        if !exact {
            failures.push(format!(
                "{}: expected a {severity} at {}:{line}:3 on {}\n{}",
                case.rule,
                hit.path,
                case.at,
                hit.show()
            ));
        }
        if found
            .iter()
            .any(|f| f["sources"].as_array().is_none_or(Vec::is_empty))
        {
            failures.push(format!(
                "{}: finding without sources\n{}",
                case.rule,
                hit.show()
            ));
        }
        let blocked = hit.findings.iter().any(|f| f["severity"] == "error");
        if hit.run.code != if blocked { 3 } else { 0 }
            || (case.severity == Error && hit.run.code != 3)
        {
            failures.push(format!(
                "{}: wrong exit code for the trigger\n{}",
                case.rule,
                hit.show()
            ));
        }

        let text = yaml(&format!("{}-miss", case.rule), &case.miss);
        let miss = validate(
            &sb,
            &format!("{}-miss.yaml", case.rule),
            &text,
            &args(&case.miss),
        );
        if !miss.of(case.rule).is_empty() {
            failures.push(format!(
                "{}: fired on its near miss\n{}",
                case.rule,
                miss.show()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rule case(s) failed:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn lvs_dr_arp_set_only_on_one_interface_is_a_warning() {
    let sb = Sandbox::host_readonly();
    let profile = p(
        NONE,
        &["lvs_dr_real_server: true"],
        &[
            "net.ipv4.conf.eth0.arp_ignore: 1",
            "net.ipv4.conf.all.arp_announce: 2",
        ],
    );
    let text = yaml("eth0-only", &profile);
    let out = validate(&sb, "eth0-only.yaml", &text, &[]);
    let found = out.of("lvs-dr-arp");
    assert!(
        found.len() == 1
            && found[0]["severity"] == "warning"
            && found[0]["message"].as_str().unwrap().contains("eth0"),
        "{}",
        out.show()
    );
}

// ---- the seeds' own bad configurations

/// Validates `text` and returns the outcome after checking the exit code.
fn seed(file: &str, text: &str, args: &[&str], code: i32) -> Outcome {
    let sb = Sandbox::host_readonly();
    let out = validate(&sb, file, text, args);
    assert_eq!(out.run.code, code, "exit code\n{}", out.show());
    out
}

/// Asserts exactly one finding of `rule` with `severity` at the line of `key`, and returns it.
fn one<'a>(out: &'a Outcome, rule: &str, severity: &str, key: &str) -> &'a Json {
    let found = out.of(rule);
    assert_eq!(found.len(), 1, "one {rule} expected\n{}", out.show());
    let f = found[0];
    assert_eq!(f["severity"], severity, "{}", out.show());
    assert_eq!(f["key"], key, "{}", out.show());
    assert_eq!(f["at"]["line"], line_of(&out.text, key), "{}", out.show());
    f
}

const SEED_004: &str = "\
version: 1
name: seed-004-lvs-nat
description: seed 004's sysctl.conf for a layer-7 balancer, here behind LVS in NAT mode
context:
  nat: true
sysctls:
  net.ipv4.tcp_tw_reuse: 1
  net.ipv4.tcp_tw_recycle: 1
  net.ipv4.tcp_timestamps: 1
  net.ipv4.tcp_fin_timeout: 20
";

#[test]
fn seed_004_on_an_lvs_nat_host_is_tw_recycle_nat_on_old_kernels_and_key_removed_on_new_ones() {
    let old = seed("seed004.yaml", SEED_004, &["--kernel", "4.9"], 3);
    let f = one(&old, "tw-recycle-nat", "error", "net.ipv4.tcp_tw_recycle");
    assert!(
        f["message"].as_str().unwrap().contains("tcp_tw_recycle=1"),
        "{}",
        old.show()
    );
    assert!(old.of("key-removed").is_empty(), "{}", old.show());

    let new = seed("seed004.yaml", SEED_004, &["--kernel", "4.12"], 3);
    one(&new, "key-removed", "error", "net.ipv4.tcp_tw_recycle");
    assert!(
        new.of("tw-recycle-nat").is_empty(),
        "the NAT breakage cannot happen without the key\n{}",
        new.show()
    );
}

#[test]
fn seed_000_problem_4_lowers_max_tw_buckets() {
    let text = "version: 1\nsysctls:\n  net.ipv4.tcp_max_tw_buckets: 5000\n";
    let out = seed("seed000-4.yaml", text, &[], 0);
    let f = one(
        &out,
        "max-tw-buckets-lowered",
        "warning",
        "net.ipv4.tcp_max_tw_buckets",
    );
    assert!(
        f["message"].as_str().unwrap().contains("5000"),
        "{}",
        out.show()
    );
}

#[test]
fn seed_000_problem_9_turns_timestamps_off() {
    let text = "version: 1\nsysctls:\n  net.ipv4.tcp_timestamps: 0\n";
    let out = seed("seed000-9.yaml", text, &[], 0);
    one(&out, "timestamps-off", "warning", "net.ipv4.tcp_timestamps");
    // The seed's full fix also writes tcp_tw_recycle=0, a key this kernel no longer has.
    let text = "version: 1\nsysctls:\n  net.ipv4.tcp_tw_recycle: 0\n  net.ipv4.tcp_timestamps: 0\n";
    let out = seed("seed000-9-full.yaml", text, &[], 3);
    one(&out, "timestamps-off", "warning", "net.ipv4.tcp_timestamps");
    one(&out, "key-removed", "error", "net.ipv4.tcp_tw_recycle");
}

#[test]
fn a_pod_enabling_tw_reuse_is_an_error() {
    let text =
        "version: 1\ncontext:\n  kubernetes_pod: true\nsysctls:\n  net.ipv4.tcp_tw_reuse: 1\n";
    let out = seed("pod.yaml", text, &[], 3);
    one(&out, "pod-tw-reuse", "error", "net.ipv4.tcp_tw_reuse");
}

#[test]
fn tcp_tw_recycle_on_the_running_kernel_is_key_removed() {
    let text = "version: 1\nsysctls:\n  net.ipv4.tcp_tw_recycle: 1\n";
    let out = seed("recycle.yaml", text, &[], 3);
    let f = one(&out, "key-removed", "error", "net.ipv4.tcp_tw_recycle");
    assert!(
        f["message"].as_str().unwrap().contains("removed in 4.12"),
        "{}",
        out.show()
    );
}

#[test]
fn a_typo_is_an_unknown_key_with_a_suggestion() {
    let text = "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timout: 30\n";
    let out = seed("typo.yaml", text, &[], 3);
    let f = one(&out, "unknown-key", "error", "net.ipv4.tcp_fin_timout");
    assert_eq!(
        f["help"],
        "did you mean `net.ipv4.tcp_fin_timeout`?",
        "{}",
        out.show()
    );
}

#[test]
fn seed_000_tcp_westwood_is_key_removed_pointing_at_congestion_control() {
    let text = "version: 1\nsysctls:\n  net.ipv4.tcp_westwood: 1\n";
    let out = seed("westwood.yaml", text, &[], 3);
    let f = one(&out, "key-removed", "error", "net.ipv4.tcp_westwood");
    assert!(
        f["help"]
            .as_str()
            .unwrap()
            .contains("net.ipv4.tcp_congestion_control"),
        "{}",
        out.show()
    );
}

#[test]
fn seed_002_rfc1337_never_existed_and_points_at_tcp_rfc1337() {
    let text = "version: 1\nsysctls:\n  net.ipv4.rfc1337: 1\n";
    let out = seed("rfc1337.yaml", text, &[], 3);
    let f = one(&out, "unknown-key", "error", "net.ipv4.rfc1337");
    assert!(
        f["help"].as_str().unwrap().contains("net.ipv4.tcp_rfc1337"),
        "{}",
        out.show()
    );
}

// ---- shipped profiles, --deny-warnings, the schema itself

#[test]
fn every_shipped_profile_is_valid_on_this_kernel() {
    let sb = Sandbox::host_readonly();
    let mut paths: Vec<_> = std::fs::read_dir(repo().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "{paths:?}");
    for path in paths {
        let run = sb.run(&["validate", path.to_str().unwrap(), "--format", "json"]);
        assert_eq!(
            run.code,
            0,
            "{}\n{}{}",
            path.display(),
            run.stdout,
            run.stderr
        );
        assert_eq!(run.json()["ok"], true, "{}", path.display());
    }
}

#[test]
fn deny_warnings_turns_a_warning_into_exit_3() {
    let sb = Sandbox::host_readonly();
    let path = sb.file(
        "warn.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_max_tw_buckets: 5000\n",
    );
    let path = path.to_str().unwrap();
    let run = sb.run(&["validate", path, "--format", "json"]).expect(0);
    let findings = run.json()["profiles"][0]["findings"].clone();
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error"),
        "{findings}"
    );
    let denied = sb
        .run(&["validate", path, "--format", "json", "--deny-warnings"])
        .expect(3);
    assert_eq!(denied.json()["ok"], false);
    assert_eq!(denied.json()["profiles"][0]["valid"], false);
}

#[test]
fn the_schema_is_large_and_everything_in_it_is_sourced() {
    let schema = Schema::from_dir(&repo().join("schema")).expect("schema/ loads");
    let raw: Vec<serde_norway::Value> =
        serde_norway::from_str(&std::fs::read_to_string(repo().join("schema/keys.yaml")).unwrap())
            .unwrap();
    // keys.yaml's entries, then the generated catalogue's (schema/catalogue.yaml).
    let curated = schema.keys.iter().filter(|k| !k.generated).count();
    assert_eq!(raw.len(), curated);
    assert!(
        schema.keys.len() >= 80,
        "only {} key entries",
        schema.keys.len()
    );
    let rules = declared_rules();
    assert!(rules.len() >= 25, "only {} rules", rules.len());
    for key in schema.keys {
        assert!(
            key.sources.iter().any(|s| !s.trim().is_empty()),
            "{} has no source",
            key.key
        );
    }
    for rule in schema.rules {
        assert!(
            rule.sources.iter().any(|s| !s.trim().is_empty()),
            "rule {} has no source",
            rule.id
        );
    }
    for rule in CODE_RULES {
        assert!(
            rule.sources.iter().any(|s| !s.trim().is_empty()),
            "rule {} has no source",
            rule.id
        );
    }
    // explain knows every rule, with its sources.
    let sb = Sandbox::host_readonly();
    for (id, _) in &rules {
        let run = sb.run(&["explain", id, "--format", "json"]).expect(0);
        let sources = &run.json()["sources"];
        assert!(
            sources.as_array().is_some_and(|s| !s.is_empty()),
            "explain {id}: {}",
            run.stdout
        );
    }
}

/// `validate a b c` with a parent all three extend shows the parent's findings once, and each
/// child's summary still counts them and says they were shown above.
#[test]
fn a_shared_parent_s_findings_are_shown_once_per_run() {
    let sb = Sandbox::host_readonly();
    sb.file(
        "parent.yaml",
        "version: 1\nname: parent\nsysctls:\n  net.core.somaxconn: 64\n",
    );
    let children: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let text = format!(
                "version: 1\nname: {name}\nextends: parent.yaml\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n"
            );
            sb.file(&format!("{name}.yaml"), &text).display().to_string()
        })
        .collect();
    let mut args = vec!["validate"];
    args.extend(children.iter().map(String::as_str));
    let run = sb.run(&args);
    assert_eq!(
        run.stdout.matches("parent.yaml:4:3").count(),
        1,
        "the parent's finding once: {}",
        run.stdout
    );
    let repeats = run
        .stdout
        .matches("1 of them shown above, in a file an earlier profile shares")
        .count();
    assert_eq!(repeats, 2, "{}", run.stdout);
    // JSON keeps every finding with every profile.
    args.extend(["--format", "json"]);
    let json = sb.run(&args).json();
    for profile in json["profiles"].as_array().unwrap() {
        let rules: Vec<&str> = profile["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap())
            .collect();
        assert!(rules.contains(&"recommended-bounds"), "{profile}");
    }
}

/// A pod profile gets one error per key a pod cannot set (`pod-not-namespaced`, with the pod's
/// remedy), not that plus the generic namespace finding for the same key.
#[test]
fn a_pod_key_a_pod_cannot_set_is_one_error_not_two() {
    let sb = Sandbox::host_readonly();
    let pod = sb.file(
        "pod.yaml",
        "version: 1\nname: pod\ncontext: {kubernetes_pod: true}\nsysctls:\n  vm.swappiness: 10\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    let run = sb.run(&[
        "k8s",
        "pod-sysctls",
        "--k8s",
        "1.29",
        pod.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    let rules: Vec<(&str, &str)> = json["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{json}"))
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| (f["key"].as_str().unwrap(), f["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(rules, [("vm.swappiness", "pod-not-namespaced")], "{json}");
}
