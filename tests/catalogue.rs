//! Proves the generated whole-kernel catalogue (`schema/catalogue.yaml`, built into the binary
//! next to the curated `keys.yaml`): it describes what real kernels have (every file under this
//! host's /proc/sys and under a fresh network namespace's), it is exactly what the generator
//! writes, its entries are consistent, and sysctl.d files written by public projects import
//! with every key catalogued.
//!
//! /proc/sys is only read. The child-namespace listing runs `find` under `unshare --net`; when
//! that is impossible the test says so loudly and fails under SYSPROF_REQUIRE_NETNS=1.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, repo};
use sysprof::profile::key::SysctlKey;
use sysprof::schema::{KeySpec, OneWayKind, Presence, Schema, Shape, Version};

/// The share of keys an entry must describe, per tree and overall.
const FLOOR: f64 = 0.98;

/// A key as the relative path components under /proc/sys.
fn components(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).expect("under the root");
    rel.iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect()
}

/// Every file under `root` (names only; nothing is read).
fn walk(root: &Path) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(_) => out.push(components(root, &path)),
                Err(_) => {}
            }
        }
    }
    out
}

/// The tree a key is counted under: `net.ipv4`, `net.netfilter`, `vm`, `kernel`, ...
fn tree(components: &[String]) -> String {
    match components {
        [net, second, _, ..] if net == "net" => format!("net.{second}"),
        [top, ..] => top.clone(),
        [] => String::new(),
    }
}

/// Matched and total keys per tree; prints the table and the keys without an entry.
fn coverage(label: &str, keys: &[Vec<String>]) -> (usize, usize) {
    let schema = Schema::embedded().unwrap();
    let mut per_tree: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut missing = Vec::new();
    for components in keys {
        let key = SysctlKey::from_components(components.clone()).expect("a /proc/sys name parses");
        let entry = per_tree.entry(tree(components)).or_default();
        entry.1 += 1;
        match schema.lookup(&key) {
            Some(spec) if !spec.sources.is_empty() => entry.0 += 1,
            _ => missing.push(key.to_string()),
        }
    }
    let (hit, all) = per_tree
        .values()
        .fold((0, 0), |(h, a), (th, ta)| (h + th, a + ta));
    println!(
        "catalogue coverage, {label}: {hit}/{all} ({:.1}%)",
        percent(hit, all)
    );
    for (tree, (h, a)) in &per_tree {
        println!("  {tree:<16} {h:>5}/{a:<5} {:>6.1}%", percent(*h, *a));
    }
    missing.sort();
    for key in &missing {
        println!("  no entry: {key}");
    }
    (hit, all)
}

fn percent(hit: usize, all: usize) -> f64 {
    if all == 0 {
        return 100.0;
    }
    100.0 * hit as f64 / all as f64
}

#[test]
fn every_sysctl_of_this_host_is_catalogued() {
    let keys = walk(Path::new("/proc/sys"));
    assert!(
        keys.len() > 200,
        "/proc/sys looks empty: {} files",
        keys.len()
    );
    let (hit, all) = coverage("this host", &keys);
    assert!(
        hit as f64 >= FLOOR * all as f64,
        "only {hit} of {all} host keys are catalogued"
    );
}

/// The file list of /proc/sys as a fresh network namespace sees it, or None (said loudly).
fn child_namespace_keys() -> Option<Vec<Vec<String>>> {
    let output = Command::new("unshare")
        .args(["--net", "find", "/proc/sys", "-type", "f"])
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let root = Path::new("/proc/sys");
            Some(
                text.lines()
                    .map(|l| components(root, Path::new(l)))
                    .collect(),
            )
        }
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                Err(e) => e.to_string(),
            };
            let message = format!(
                "REAL-KERNEL TEST NOT RUN: cannot list /proc/sys in a fresh network namespace \
                 (`unshare --net`: {why}) — run as root with util-linux"
            );
            if std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
            }
            eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
            None
        }
    }
}

#[test]
fn every_sysctl_of_a_fresh_network_namespace_is_catalogued() {
    let Some(keys) = child_namespace_keys() else {
        return;
    };
    let net: Vec<_> = keys.iter().filter(|k| k[0] == "net").cloned().collect();
    assert!(
        net.len() > 100,
        "a child netns shows only {} net keys",
        net.len()
    );
    let (hit, all) = coverage("fresh network namespace", &keys);
    assert!(
        hit as f64 >= FLOOR * all as f64,
        "only {hit} of {all} child-namespace keys are catalogued"
    );
    let (hit, all) = coverage("fresh network namespace, net.* only", &net);
    assert!(
        hit as f64 >= FLOOR * all as f64,
        "only {hit} of {all} child-namespace net keys are catalogued"
    );
}

#[test]
fn the_checked_in_catalogue_is_what_the_generator_writes() {
    let script = repo().join("schema/gen/generate.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--check")
        .output()
        .expect("python3 runs (the generator needs only its standard library)");
    assert!(
        out.status.success(),
        "{} --check failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Keys whose boot value their own table refuses (checked in the 7.2 source): writing the default
/// back fails with EINVAL, so "restore the default" needs another route.
const DEFAULT_OUTSIDE_BOUNDS: &[(&str, &str)] = &[
    (
        "kernel.kexec_load_limit_panic",
        "-1 means unlimited; writes must be >= 0 and below the current limit",
    ),
    (
        "kernel.kexec_load_limit_reboot",
        "-1 means unlimited; writes must be >= 0 and below the current limit",
    ),
    (
        "kernel.msg_next_id",
        "-1 means 'the next free id'; a checkpoint/restore write must be >= 0",
    ),
    (
        "kernel.sem_next_id",
        "-1 means 'the next free id'; a checkpoint/restore write must be >= 0",
    ),
    (
        "kernel.shm_next_id",
        "-1 means 'the next free id'; a checkpoint/restore write must be >= 0",
    ),
    (
        "kernel.max_rcu_stall_to_panic",
        "starts at 0 (unused until panic_on_rcu_stall), extra1 is SYSCTL_ONE",
    ),
    (
        "vm.dirty_background_bytes",
        "0 means 'use dirty_background_ratio'; writing the ratio zeroes it, writing 0 is refused",
    ),
    (
        "vm.dirty_bytes",
        "0 means 'use dirty_ratio'; writing the ratio zeroes it, values below two pages are refused",
    ),
];

/// Why a generated entry is inconsistent, if it is.
fn inconsistency(spec: &KeySpec) -> Option<String> {
    if spec.sources.is_empty() || spec.sources.iter().any(|s| s.trim().is_empty()) {
        return Some("no source".into());
    }
    if spec.caveat.trim().is_empty() {
        return Some("empty caveat".into());
    }
    if spec.kernels.is_empty() {
        return Some("no covered kernel has it".into());
    }
    if spec.shape == Shape::Tuple && spec.len.is_none_or(|n| n < 2) {
        return Some("a tuple without a length".into());
    }
    if spec.read_only && (spec.kernel_bounds.is_some() || spec.default.is_some()) {
        return Some("read-only, yet bounds or a default".into());
    }
    if spec.trigger && spec.default.is_some() {
        return Some("a trigger with a default".into());
    }
    let bounds = spec.kernel_bounds.unwrap_or_default();
    if let (Some(min), Some(max)) = (bounds.min, bounds.max) {
        if min > max {
            return Some(format!("kernel_bounds {bounds}"));
        }
    }
    if spec.shape == Shape::Bool && (bounds.min.is_some_and(|m| m > 0) || bounds.max == Some(0)) {
        return Some(format!("bool with kernel_bounds {bounds}"));
    }
    // A key the table lets only lock (modules_disabled accepts only 1) starts outside it, and a
    // few keys start at a sentinel the table refuses to have written back.
    let locks = spec.one_way.is_some_and(|w| w.kind == OneWayKind::ToValues);
    let sentinel = DEFAULT_OUTSIDE_BOUNDS.iter().any(|(k, _)| *k == spec.key);
    let default = spec.default.map(|d| d.to_value());
    let numbers = default
        .as_ref()
        .map(|v| v.tokens().to_vec())
        .unwrap_or_default();
    for token in numbers {
        if let Ok(n) = token.parse::<i128>() {
            if !bounds.contains(n) && !locks && !sentinel {
                return Some(format!("default {token} outside kernel_bounds {bounds}"));
            }
        }
    }
    None
}

#[test]
fn generated_entries_are_consistent() {
    let schema = Schema::embedded().unwrap();
    let generated: Vec<&KeySpec> = schema.keys.iter().filter(|s| s.generated).collect();
    let curated = schema.keys.len() - generated.len();
    let patterns = generated.iter().filter(|s| s.key.contains('*')).count();
    println!(
        "catalogue: {} generated entries ({patterns} patterns), {curated} curated, covered releases {:?}",
        generated.len(),
        generated[0]
            .covered
            .iter()
            .map(Version::to_string)
            .collect::<Vec<_>>()
    );
    assert!(
        generated.len() > 800,
        "only {} generated entries",
        generated.len()
    );
    let bad: Vec<String> = generated
        .iter()
        .filter_map(|s| inconsistency(s).map(|why| format!("{}: {why}", s.key)))
        .collect();
    assert!(bad.is_empty(), "inconsistent entries:\n{}", bad.join("\n"));
    for spec in schema.keys.iter().filter(|s| !s.generated) {
        let key = SysctlKey::parse(&spec.key.replace('*', "x")).unwrap();
        let found = schema.lookup(&key).unwrap();
        assert!(
            !found.generated || spec.key.contains('*'),
            "{}: the generated entry shadows the curated one",
            spec.key
        );
    }
}

#[test]
fn presence_comes_from_the_covered_releases() {
    let schema = Schema::embedded().unwrap();
    let spec = |key: &str| schema.lookup_text(key).unwrap();
    let v = |text: &str| text.parse::<Version>().unwrap();
    // Added in 6.5: absent on 5.10/6.1, present from 6.12 on, unknown in between.
    let added = spec("net.ipv4.tcp_backlog_ack_defer");
    assert!(added.generated);
    assert_eq!(added.presence_on(v("5.10")), Presence::Absent);
    assert_eq!(added.presence_on(v("6.1")), Presence::Absent);
    assert_eq!(added.presence_on(v("6.6")), Presence::Unknown);
    assert_eq!(added.presence_on(v("6.12")), Presence::Present);
    assert_eq!(added.presence_on(v("9.0")), Presence::Present);
    assert!(added.exists_on(v("6.6")) && !added.exists_on(v("6.1")));
    // Moved to debugfs in 5.13: present on 5.10 only.
    let moved = spec("kernel.sched_min_granularity_ns");
    assert_eq!(moved.presence_on(v("5.10")), Presence::Present);
    assert_eq!(moved.presence_on(v("4.19")), Presence::Unknown);
    assert_eq!(moved.presence_on(v("6.1")), Presence::Absent);
    // Curated entries keep deciding by added/removed.
    let removed = spec("net.ipv4.tcp_tw_recycle");
    assert_eq!(removed.presence_on(v("4.11")), Presence::Present);
    assert_eq!(removed.presence_on(v("6.1")), Presence::Absent);
}

#[test]
fn one_way_and_trigger_keys_are_marked() {
    let schema = Schema::embedded().unwrap();
    let spec = |key: &str| schema.lookup_text(key).unwrap();
    for key in [
        "vm.drop_caches",
        "vm.compact_memory",
        "net.ipv4.route.flush",
    ] {
        assert!(spec(key).trigger, "{key} is a trigger");
    }
    let modules = spec("kernel.modules_disabled").one_way.unwrap();
    assert!(modules.irreversible(Some(0), 1) && !modules.irreversible(Some(1), 1));
    let ptrace = spec("kernel.yama.ptrace_scope").one_way.unwrap();
    assert!(ptrace.irreversible(Some(1), 3) && !ptrace.irreversible(Some(0), 2));
    let tainted = spec("kernel.tainted").one_way.unwrap();
    assert!(tainted.irreversible(Some(0), 1) && !tainted.irreversible(Some(3), 1));
    let limit = spec("kernel.kexec_load_limit_panic").one_way.unwrap();
    assert!(limit.irreversible(Some(5), 3) && !limit.irreversible(Some(5), 7));
    let bset = spec("kernel.usermodehelper.bset").one_way.unwrap();
    assert_eq!(bset.kind, OneWayKind::BitsOnlyCleared);
    assert!(spec("fs.file-nr").read_only && spec("kernel.random.uuid").read_only);
}

/// Keys of the real-world files that no kernel covered here has, and why.
const NOT_IN_ANY_COVERED_KERNEL: &[(&str, &str)] = &[];

/// The keys a sysctl.d file sets (sysctl.d(5): `-` prefix = ignore errors, `#`/`;` comments).
fn file_keys(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines = text.lines().map(str::trim);
    let assignments = lines.filter(|l| !l.is_empty() && !l.starts_with(['#', ';']));
    assignments
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_start_matches('-').to_owned())
        .collect()
}

fn real_world_files() -> Vec<PathBuf> {
    let dir = repo().join("tests/data/sysctl.d");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

#[test]
fn real_world_sysctl_d_files_import_with_every_key_catalogued() {
    let schema = Schema::embedded().unwrap();
    let files = real_world_files();
    let projects: BTreeSet<String> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let first = text.lines().next().unwrap_or("");
            assert!(
                first.starts_with("# ") && first.contains(':'),
                "{}: the first line must name the project and the path in it",
                f.display()
            );
            first[2..].split(':').next().unwrap().to_owned()
        })
        .collect();
    assert!(projects.len() >= 8, "files from only {projects:?}");
    let mut uncatalogued = Vec::new();
    for file in &files {
        let out = Command::new(bin())
            .arg("import")
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sysprof import {} failed:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for key in file_keys(file) {
            let parsed = SysctlKey::parse(&key).unwrap_or_else(|e| panic!("{key}: {e}"));
            if schema.lookup(&parsed).is_none()
                && !NOT_IN_ANY_COVERED_KERNEL.iter().any(|(k, _)| *k == key)
            {
                uncatalogued.push(format!("{}: {key}", file.display()));
            }
        }
    }
    assert!(
        uncatalogued.is_empty(),
        "keys of real-world files without a catalogue entry:\n{}",
        uncatalogued.join("\n")
    );
}

/// The findings `validate --kernel 6.1` must give each real-world file once imported: every
/// error (rule, key) exactly, and these warnings and notes at least. Everything else there is
/// a false error. The errors are true: the scheduler's `sched_*_ns` tunables left sysctl for
/// debugfs in 5.13, and tcp_tw_recycle is gone since 4.12.
/// (rule, key) pairs.
type Findings = &'static [(&'static str, &'static str)];

const REAL_WORLD_FINDINGS: &[(&str, Findings, Findings)] = &[
    (
        "scylladb-99-scylla",
        &[
            ("key-absent", "kernel.sched_latency_ns"),
            ("key-absent", "kernel.sched_min_granularity_ns"),
            ("key-absent", "kernel.sched_tunable_scaling"),
            ("key-absent", "kernel.sched_wakeup_granularity_ns"),
        ],
        &[],
    ),
    (
        "tuned-profiles",
        &[
            ("key-absent", "kernel.sched_min_granularity_ns"),
            ("key-absent", "kernel.sched_wakeup_granularity_ns"),
        ],
        &[],
    ),
    (
        "devsec-os-hardening",
        &[],
        &[
            ("timestamps-off", "net.ipv4.tcp_timestamps"),
            ("one-way-key", "kernel.kexec_load_disabled"),
        ],
    ),
    (
        "konstruktoid-hardening-sysctl",
        &[],
        &[("timestamps-off", "net.ipv4.tcp_timestamps")],
    ),
    (
        "tuned-oracle",
        &[],
        &[("port-range-parity", "net.ipv4.ip_local_port_range")],
    ),
    (
        "seed-000-ecs-faq",
        &[("key-removed", "net.ipv4.tcp_tw_recycle")],
        &[
            ("timestamps-off", "net.ipv4.tcp_timestamps"),
            (
                "syn-backlog-with-syncookies",
                "net.ipv4.tcp_max_syn_backlog",
            ),
            ("tw-reuse-without-timestamps", "net.ipv4.tcp_tw_reuse"),
        ],
    ),
];

/// Real-world files import (on this host, read only) and validate for kernel 6.1 with no
/// false error, and the true findings still fire.
#[test]
fn real_world_files_validate_for_6_1_without_false_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for file in real_world_files() {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let profile = dir.path().join(format!("{stem}.yaml"));
        let import = Command::new(bin())
            .args(["--root", "/proc/sys", "import"])
            .arg(&file)
            .arg("-o")
            .arg(&profile)
            .output()
            .unwrap();
        assert!(import.status.success(), "import {stem}");
        let out = Command::new(bin())
            .args([
                "--root",
                "/proc/sys",
                "validate",
                "--kernel",
                "6.1",
                "--format",
                "json",
            ])
            .arg(&profile)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let findings = json["profiles"][0]["findings"].as_array().unwrap().clone();
        let of = |severity: &[&str]| -> BTreeSet<(String, String)> {
            findings
                .iter()
                .filter(|f| severity.contains(&f["severity"].as_str().unwrap()))
                .map(|f| {
                    let key = f["key"].as_str().unwrap_or_default().to_owned();
                    (f["rule"].as_str().unwrap().to_owned(), key)
                })
                .collect()
        };
        let expected = REAL_WORLD_FINDINGS.iter().find(|(s, _, _)| *s == stem);
        let (errors, required) = expected.map_or((&[][..], &[][..]), |(_, e, r)| (*e, *r));
        let want: BTreeSet<(String, String)> = errors
            .iter()
            .map(|(r, k)| ((*r).to_owned(), (*k).to_owned()))
            .collect();
        let got = of(&["error"]);
        if got != want {
            wrong.push(format!("{stem}: errors {got:?}, expected {want:?}"));
        }
        let seen = of(&["warning", "info"]);
        for (rule, key) in required {
            if !seen.contains(&((*rule).to_owned(), (*key).to_owned())) {
                wrong.push(format!("{stem}: {rule} on {key} did not fire"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
