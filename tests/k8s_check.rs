//! `sysprof k8s check`: Kubernetes manifests (tests/manifests/, several kinds, multi-document)
//! checked before admission. A good file passes; each bad file breaks one rule, and the finding
//! names that rule and points at the line and column of the entry (or its value).

mod common;

use std::path::PathBuf;

use common::{Sandbox, repo};
use serde_json::Value as Json;
use sysprof::error::exit;

fn manifest(name: &str) -> PathBuf {
    repo().join("tests/manifests").join(name)
}

/// Runs `k8s check --format json` on files with flags; returns the exit code and the document.
fn check(files: &[PathBuf], flags: &[&str]) -> (i32, Json) {
    let sb = Sandbox::fake(&[]);
    let mut args = vec!["k8s", "check", "--format", "json"];
    args.extend_from_slice(flags);
    let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let run = sb.run(&args);
    (run.code, run.json())
}

/// Every finding of the first file, with its workload's kind.
fn findings(doc: &Json) -> Vec<(String, Json)> {
    let workloads = doc["files"][0]["workloads"].as_array().unwrap();
    workloads
        .iter()
        .flat_map(|w| {
            let kind = w["kind"].as_str().unwrap().to_owned();
            let found = w["findings"].as_array().unwrap().clone();
            found.into_iter().map(move |f| (kind.clone(), f))
        })
        .collect()
}

/// Line and column (1-based) of the first occurrence of `needle` in a file.
fn position(file: &PathBuf, needle: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(file).unwrap();
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", file.display()));
    (i as u64 + 1, line.find(needle).unwrap() as u64 + 1)
}

/// One bad manifest: the rule it breaks, where, in which kind of workload, with which flags.
struct Bad {
    file: &'static str,
    flags: &'static [&'static str],
    rule: &'static str,
    severity: &'static str,
    kind: &'static str,
    at: &'static str,
    exit: i32,
}

const TARGET: &[&str] = &["--k8s", "1.29", "--kernel", "6.1"];

const BAD: &[Bad] = &[
    Bad {
        file: "not-namespaced.yaml",
        flags: TARGET,
        rule: "pod-not-namespaced",
        severity: "error",
        kind: "Pod",
        at: "vm.max_map_count",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "unsafe.yaml",
        flags: TARGET,
        rule: "k8s-unsafe-not-allowed",
        severity: "error",
        kind: "Deployment",
        at: "net.ipv4.tcp_rmem",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "value-shape.yaml",
        flags: TARGET,
        rule: "value-shape",
        severity: "error",
        kind: "ReplicaSet",
        at: "\"10240\"",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "kernel-bounds.yaml",
        flags: TARGET,
        rule: "kernel-bounds",
        severity: "error",
        kind: "Job",
        at: "\"30000000\"",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "unknown-key.yaml",
        flags: TARGET,
        rule: "unknown-key",
        severity: "error",
        kind: "Pod",
        at: "net.ipv4.tcp_fin_timout",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "tw-reuse.yaml",
        flags: &[
            "--k8s",
            "1.29",
            "--kernel",
            "6.1",
            "--allowed-unsafe",
            "net.ipv4.*",
        ],
        rule: "pod-tw-reuse",
        severity: "error",
        kind: "Deployment",
        at: "net.ipv4.tcp_tw_reuse",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "tw-recycle.yaml",
        flags: &[
            "--k8s",
            "1.29",
            "--kernel",
            "4.9",
            "--allowed-unsafe",
            "net.*",
        ],
        rule: "pod-tw-recycle",
        severity: "error",
        kind: "StatefulSet",
        at: "net.ipv4.tcp_tw_recycle",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "tw-recycle.yaml",
        flags: TARGET,
        rule: "key-removed",
        severity: "error",
        kind: "StatefulSet",
        at: "net.ipv4.tcp_tw_recycle",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "host-network.yaml",
        flags: TARGET,
        rule: "k8s-host-namespace",
        severity: "error",
        kind: "DaemonSet",
        at: "net.ipv4.ip_local_port_range",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "not-a-string.yaml",
        flags: TARGET,
        rule: "k8s-manifest",
        severity: "error",
        kind: "CronJob",
        at: "30",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "container-sysctls.yaml",
        flags: TARGET,
        rule: "k8s-manifest",
        severity: "error",
        kind: "StatefulSet",
        at: "sysctls:",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "duplicate.yaml",
        flags: TARGET,
        rule: "k8s-manifest",
        severity: "error",
        kind: "Pod",
        at: "net/ipv4/tcp_fin_timeout",
        exit: exit::INVALID_INPUT,
    },
    Bad {
        file: "port-overlap.yaml",
        flags: TARGET,
        rule: "port-range-overlap",
        severity: "warning",
        kind: "Pod",
        at: "net.ipv4.ip_local_port_range",
        exit: exit::OK,
    },
    Bad {
        file: "port-overlap.yaml",
        flags: &["--k8s", "1.29", "--kernel", "6.1", "--deny-warnings"],
        rule: "port-range-overlap",
        severity: "warning",
        kind: "Pod",
        at: "net.ipv4.ip_local_port_range",
        exit: exit::INVALID_INPUT,
    },
];

#[test]
fn each_bad_manifest_breaks_its_rule_at_the_entry() {
    for bad in BAD {
        let file = manifest("bad").join(bad.file);
        let (code, doc) = check(std::slice::from_ref(&file), bad.flags);
        let context = format!("{} {:?}: {doc:#}", bad.file, bad.flags);
        assert_eq!(code, bad.exit, "{context}");
        assert_eq!(doc["ok"], bad.exit == exit::OK, "{context}");
        let all = findings(&doc);
        let (kind, f) = all
            .iter()
            .find(|(_, f)| f["rule"] == bad.rule)
            .unwrap_or_else(|| panic!("no {} finding: {context}", bad.rule));
        assert_eq!(
            (kind.as_str(), f["severity"].as_str()),
            (bad.kind, Some(bad.severity))
        );
        let (line, col) = position(&file, bad.at);
        assert_eq!(f["at"]["file"], file.display().to_string(), "{context}");
        assert_eq!(
            (f["at"]["line"].as_u64(), f["at"]["col"].as_u64()),
            (Some(line), Some(col)),
            "{context}"
        );
        let blocking = all.iter().filter(|(_, f)| f["severity"] == "error").count();
        assert_eq!(
            blocking > 0,
            bad.severity == "error",
            "only the intended errors: {context}"
        );
    }
}

#[test]
fn a_multi_document_file_of_many_kinds_passes_with_the_kubelets_allowlist() {
    let shop = manifest("shop.yaml");
    let (code, doc) = check(std::slice::from_ref(&shop), TARGET);
    assert_eq!(code, exit::INVALID_INPUT, "{doc:#}");
    let errors: Vec<_> = findings(&doc)
        .into_iter()
        .filter(|(_, f)| f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "StatefulSet");
    assert_eq!(errors[0].1["rule"], "k8s-unsafe-not-allowed");
    assert_eq!(errors[0].1["key"], "net.core.somaxconn");

    for allowed in [
        "net.core.somaxconn",
        "net.core.*",
        "net/core/*",
        "kernel.shm*,net.*",
    ] {
        let flags = [TARGET, &["--allowed-unsafe", allowed]].concat();
        let (code, doc) = check(std::slice::from_ref(&shop), &flags);
        assert_eq!(code, exit::OK, "{allowed}: {doc:#}");
        let allowed_note = findings(&doc)
            .into_iter()
            .find(|(_, f)| f["rule"] == "pod-unsafe-sysctl")
            .expect("the allowed key is noted");
        assert_eq!(allowed_note.1["severity"], "info");
    }

    let (_, doc) = check(
        &[shop],
        &[TARGET, &["--allowed-unsafe", "net.core.somaxconn"]].concat(),
    );
    let file = &doc["files"][0];
    assert_eq!(file["documents"], 7);
    let workloads = file["workloads"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str, usize)> = workloads
        .iter()
        .map(|w| {
            let n = w["sysctls"].as_array().unwrap().len();
            (
                w["kind"].as_str().unwrap(),
                w["name"].as_str().unwrap(),
                w["pod_spec"].as_str().unwrap(),
                n,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("Deployment", "web", "spec.template.spec", 2),
            ("StatefulSet", "cache", "spec.template.spec", 1),
            (
                "CronJob",
                "nightly-report",
                "spec.jobTemplate.spec.template.spec",
                1
            ),
            ("Job", "migrate-2-4-1", "spec.template.spec", 1),
            ("DaemonSet", "node-logs", "spec.template.spec", 0),
        ]
    );
    assert_eq!(workloads[0]["namespace"], "shop");
    assert_eq!(workloads[0]["sysctls"][0]["value"], "10240 65535");
    assert_eq!(doc["target"]["k8s"], "1.29");
}

#[test]
fn the_safe_list_depends_on_the_kubernetes_version_and_the_node_kernel() {
    let pod = repo().join("examples/kubernetes/pod-sysctls.yaml");
    let run = |flags: &[&str]| check(std::slice::from_ref(&pod), flags);
    assert_eq!(run(&["--k8s", "1.29", "--kernel", "6.1"]).0, exit::OK);
    let (code, doc) = run(&["--k8s", "1.28", "--kernel", "6.1"]);
    assert_eq!(code, exit::INVALID_INPUT);
    let unsafe_keys: Vec<String> = findings(&doc)
        .into_iter()
        .filter(|(_, f)| f["rule"] == "k8s-unsafe-not-allowed")
        .map(|(_, f)| f["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        unsafe_keys,
        [
            "net.ipv4.tcp_fin_timeout",
            "net.ipv4.tcp_keepalive_intvl",
            "net.ipv4.tcp_keepalive_probes",
            "net.ipv4.tcp_keepalive_time"
        ]
    );
    let allowed = "net.ipv4.tcp_fin_timeout,net.ipv4.tcp_keepalive_*";
    assert_eq!(
        run(&[
            "--k8s",
            "1.28",
            "--kernel",
            "6.1",
            "--allowed-unsafe",
            allowed
        ])
        .0,
        exit::OK
    );
    // Safe since 1.29 only on node kernels that namespace the keys (tcp_fin_timeout: 4.6).
    let (code, doc) = run(&["--k8s", "1.29", "--kernel", "4.4"]);
    assert_eq!(code, exit::INVALID_INPUT, "{doc:#}");
}

#[test]
fn human_output_quotes_the_line_and_names_the_workload() {
    let sb = Sandbox::fake(&[]);
    let file = manifest("bad/tw-reuse.yaml");
    let run = sb.run(&[
        "k8s",
        "check",
        "--k8s",
        "1.29",
        "--kernel",
        "6.1",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, exit::INVALID_INPUT, "{}", run.stderr);
    let out = run.stdout;
    assert!(out.contains("error[pod-tw-reuse]"), "{out}");
    assert!(
        out.contains(&format!("--> {}:17:19", file.display())),
        "{out}"
    );
    assert!(
        out.contains("17 |           - name: net.ipv4.tcp_tw_reuse"),
        "{out}"
    );
    assert!(
        out.contains("= in: Deployment crawler (spec.template.spec)"),
        "{out}"
    );
    assert!(
        out.contains("invalid (1 pod spec(s), 2 sysctl(s); 2 error(s), 0 warning(s))"),
        "{out}"
    );
}

#[test]
fn unreadable_or_broken_files_are_reported_and_the_rest_still_checked() {
    let sb = Sandbox::fake(&[]);
    let broken = sb.file("broken.yaml", "kind: Pod\nspec: [1, 2\n");
    let missing = sb.dir.path().join("missing.yaml");
    let list = sb.file(
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Pod\n    metadata: {name: a}\n    spec:\n      securityContext:\n        sysctls:\n          - {name: kernel.shm_rmid_forced, value: \"1\"}\n",
    );
    let (code, doc) = check(&[broken.clone(), missing, list], TARGET);
    assert_eq!(code, exit::INVALID_INPUT, "{doc:#}");
    let files = doc["files"].as_array().unwrap();
    assert!(
        files[0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("{}:3:1", broken.display())),
        "{doc:#}"
    );
    assert!(
        files[1]["error"]
            .as_str()
            .unwrap()
            .contains("cannot read manifest"),
        "{doc:#}"
    );
    assert_eq!(files[2]["valid"], true);
    assert_eq!(files[2]["workloads"][0]["pod_spec"], "items[0].spec");

    let human = sb.run(&["k8s", "check", broken.to_str().unwrap()]);
    assert_eq!(human.code, exit::INVALID_INPUT);
    assert!(
        human
            .stderr
            .contains(&format!("--> {}:3:1", broken.display())),
        "{}",
        human.stderr
    );

    let usage = sb.run(&[
        "k8s",
        "check",
        "--allowed-unsafe",
        "vm.*",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(usage.code, exit::USAGE);
    assert!(
        usage
            .stderr
            .contains("not known to the kubelet to be namespaced"),
        "{}",
        usage.stderr
    );
}

#[test]
fn explain_knows_the_manifest_rules() {
    let sb = Sandbox::fake(&[]);
    for rule in [
        "k8s-manifest",
        "k8s-unsafe-not-allowed",
        "k8s-host-namespace",
    ] {
        let doc = sb
            .run(&["explain", rule, "--format", "json"])
            .expect(0)
            .json();
        assert_eq!(doc["severity"], "error", "{rule}");
        assert!(!doc["sources"].as_array().unwrap().is_empty(), "{rule}");
    }
}

/// kubernetes-validate (PyPI; it bundles the Kubernetes OpenAPI schemas and runs offline).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate>=1.29,<1.38";

/// Runs `kubernetes-validate --strict` for Kubernetes 1.29 on a file; whether it passed.
fn schema_accepts(venv: &std::path::Path, file: &std::path::Path) -> bool {
    let run = std::process::Command::new(venv.join("bin/kubernetes-validate"))
        .args(["-k", "1.29.0", "--strict", "--quiet"])
        .arg(file)
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(
        !log.contains("could not be validated"),
        "{}: {log}",
        file.display()
    );
    run.status.success()
}

#[test]
fn the_openapi_schema_agrees_where_it_can_and_sysprof_sees_further() {
    let probe = "import kubernetes_validate";
    let Some(venv) = common::pip_venv(
        "sysprof-kubernetes-validate-venv-1.29-1.38",
        KUBERNETES_VALIDATE,
        probe,
    ) else {
        return;
    };
    // The shipped manifests and the good test file are valid Kubernetes objects.
    let mut good: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    good.push(manifest("shop.yaml"));
    for file in &good {
        assert!(
            schema_accepts(&venv, file),
            "{} fails the Kubernetes 1.29 schema",
            file.display()
        );
    }
    // Every bad file the schema refuses, sysprof refuses as `k8s-manifest`; the others are valid
    // objects that the kubelet, the kernel or the seeds' rules would still reject.
    for bad in BAD {
        let file = manifest("bad").join(bad.file);
        let refused_by_schema = !schema_accepts(&venv, &file);
        let expected = ["not-a-string.yaml", "container-sysctls.yaml"].contains(&bad.file);
        assert_eq!(refused_by_schema, expected, "{}", bad.file);
        if refused_by_schema {
            assert_eq!(bad.rule, "k8s-manifest", "{}", bad.file);
        }
    }
}
