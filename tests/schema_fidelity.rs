//! Proves `schema/keys.yaml` against the running kernel. Every claim the catalogue makes that a
//! kernel can confirm is checked: which keys exist (and which do not), which scope they have
//! (writable in a child network namespace, read-only there, absent there), and the kernel bounds
//! of namespaced keys (the bounds are accepted, one past them fails with EINVAL).
//!
//! Writes happen only inside a throwaway network namespace (`common::Netns`), from a thread that
//! entered it with setns(2) and checked that it did; the host's /proc/sys is only read, and its
//! values are compared before and after to prove it.

mod common;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Netns, repo};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use sysprof::schema::{Bounds, KeySpec, Schema, Scope, Shape, Version};

/// Keys whose bounds can only be reached after relaxing another key first (keys.yaml caveats):
/// the port range must start at or above ip_unprivileged_port_start, which in turn must not
/// exceed the range's low end.
const RELAX: &[(&str, &str, &str)] = &[
    (
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "0",
    ),
    (
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_port_range",
        "65535 65535",
    ),
];

/// What the run found.
#[derive(Default)]
struct Tally {
    probed: usize,
    confirmed: usize,
    /// Confirmed claims by kind: existence, scope, bounds.
    kinds: BTreeMap<&'static str, usize>,
    contradicted: Vec<String>,
    skipped: Vec<String>,
    /// Failures of the harness itself (a restore that did not take), not of the schema.
    harness: Vec<String>,
}

impl Tally {
    fn claim(&mut self, key: &str, claim: &str, holds: bool, observed: impl FnOnce() -> String) {
        if holds {
            self.confirmed += 1;
            let kind = match claim.split([' ', ':']).next() {
                Some("kernel_bounds") => "bounds",
                Some("netns" | "ro_in_child" | "init_only") => "scope",
                _ => "existence",
            };
            *self.kinds.entry(kind).or_default() += 1;
        } else {
            self.contradicted.push(format!(
                "{key}: schema claims {claim}, kernel: {}",
                observed()
            ));
        }
    }

    fn merge(&mut self, other: Tally) {
        self.confirmed += other.confirmed;
        for (kind, n) in other.kinds {
            *self.kinds.entry(kind).or_default() += n;
        }
        self.contradicted.extend(other.contradicted);
        self.harness.extend(other.harness);
    }
}

/// `net.ipv4.tcp_rmem` → `/proc/sys/net/ipv4/tcp_rmem` (no schema key has a dotted component).
fn path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// A key's value without the trailing newline, as seen by the calling thread.
fn read(key: &str) -> Result<String, String> {
    std::fs::read_to_string(path(key))
        .map(|v| v.trim_end_matches('\n').to_owned())
        .map_err(|e| e.to_string())
}

/// Writes `value` in one write(2), as `echo value > file` does; Err is the errno.
fn write(key: &str, value: &str) -> Result<(), Errno> {
    let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let mut file = OpenOptions::new()
        .write(true)
        .open(path(key))
        .map_err(errno)?;
    let bytes = format!("{value}\n");
    match file.write(bytes.as_bytes()) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(_) => Err(Errno::EIO),
        Err(e) => Err(errno(e)),
    }
}

fn shown(result: &Result<(), Errno>) -> String {
    match result {
        Ok(()) => "accepted".into(),
        Err(e) => format!("{e} ({})", e.desc()),
    }
}

/// The concrete keys an entry names: a pattern is probed on `all` and `lo`.
fn names(spec: &KeySpec) -> Vec<String> {
    if spec.key.contains('*') {
        vec![spec.key.replace('*', "all"), spec.key.replace('*', "lo")]
    } else {
        vec![spec.key.to_owned()]
    }
}

/// Why a key cannot be checked here: its module is not loaded.
fn missing_module(key: &str) -> Option<&'static str> {
    let (module, dir) = if key.starts_with("net.netfilter.") || key.starts_with("net.nf_conntrack")
    {
        ("nf_conntrack", "/proc/sys/net/netfilter")
    } else if key.starts_with("net.bridge.") {
        ("br_netfilter", "/proc/sys/net/bridge")
    } else {
        return None;
    };
    (!Path::new(dir).exists()).then_some(module)
}

/// Whether the schema says the key exists on `kernel`. An entry with a `replacement` but no
/// `removed` (nor `added`) is a name no kernel ever had (README: "for removed / never-existing
/// names").
fn claims_to_exist(spec: &KeySpec, kernel: Version) -> bool {
    let never = spec.replacement.is_some() && spec.removed.is_none() && spec.added.is_none();
    spec.exists_on(kernel) && !never
}

/// The scope the schema gives one concrete key on `kernel` (older releases' scopes and a
/// pattern's own instances, such as the neighbour tables' `default`, included).
fn scope_of(spec: &KeySpec, key: &str, kernel: Version) -> Scope {
    spec.scope_of(&key.split('.').collect::<Vec<_>>(), kernel)
}

/// The text written to probe `n`: repeated for every element of tuples and port ranges.
fn render(spec: &KeySpec, n: i128) -> String {
    let count = match spec.shape {
        Shape::Tuple => spec.len.unwrap_or(1),
        Shape::PortRange => 2,
        _ => 1,
    };
    vec![n.to_string(); count].join(" ")
}

/// (value, accepted?) for each side the kernel checks.
fn probes(bounds: Bounds) -> Vec<(i128, bool)> {
    let mut out = Vec::new();
    if let Some(min) = bounds.min {
        out.extend([(min, true), (min - 1, false)]);
    }
    if let Some(max) = bounds.max {
        out.extend([(max, true), (max + 1, false)]);
    }
    out
}

/// Runs `f` on a fresh thread that entered the namespace, after proving it is not the host's.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = PathBuf::from("/run/netns").join(&ns.name);
    std::thread::spawn(move || {
        let target = File::open(&file).unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
        setns(&target, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
        let id = |m: std::fs::Metadata| (m.dev(), m.ino());
        let here = id(std::fs::metadata("/proc/thread-self/ns/net").unwrap());
        assert_eq!(
            here,
            id(target.metadata().unwrap()),
            "the probing thread is not in the test namespace"
        );
        assert_ne!(
            here,
            id(std::fs::metadata("/proc/self/ns/net").unwrap()),
            "the test namespace is the host's"
        );
        f()
    })
    .join()
    .expect("probing thread")
}

/// Probes one entry's kernel bounds in the namespace, then restores every value it touched.
fn probe_bounds(spec: &KeySpec, key: &str, bounds: Bounds, tally: &mut Tally) {
    let Ok(original) = read(key) else { return };
    let mut relaxed = Vec::new();
    for &(_, other, value) in RELAX.iter().filter(|r| r.0 == key) {
        let before = read(other).unwrap_or_default();
        if let Err(e) = write(other, value) {
            tally
                .harness
                .push(format!("{key}: relaxing {other} to {value:?} failed: {e}"));
        }
        relaxed.push((other, before));
    }
    for (n, accepted) in probes(bounds) {
        let text = render(spec, n);
        let result = write(key, &text);
        let (claim, holds) = match accepted {
            true => (
                format!("kernel_bounds {bounds}: {text:?} is accepted"),
                result.is_ok(),
            ),
            false => (
                format!("kernel_bounds {bounds}: {text:?} fails with EINVAL"),
                result == Err(Errno::EINVAL),
            ),
        };
        tally.claim(key, &claim, holds, || shown(&result));
    }
    for (k, v) in std::iter::once((key, original)).chain(relaxed.into_iter().rev()) {
        let restored = write(k, &v).is_ok() && read(k).as_deref() == Ok(v.as_str());
        if !restored {
            tally
                .harness
                .push(format!("{k}: could not restore {v:?} (now {:?})", read(k)));
        }
    }
}

/// Every claim checkable inside the child namespace.
fn child_claims(specs: Vec<KeySpec>, kernel: Version) -> Tally {
    let mut tally = Tally::default();
    for spec in &specs {
        for (i, key) in names(spec).iter().enumerate() {
            if missing_module(key).is_some() {
                continue;
            }
            let present = path(key).exists();
            if !claims_to_exist(spec, kernel) {
                tally.claim(key, "it does not exist (child netns)", !present, || {
                    "present".into()
                });
                continue;
            }
            match scope_of(spec, key, kernel) {
                Scope::InitOnly => {
                    tally.claim(key, "init_only: absent in a child netns", !present, || {
                        "present".into()
                    })
                }
                Scope::Netns | Scope::RoInChild => {
                    tally.claim(key, "it exists in a child netns", present, || {
                        "absent".into()
                    });
                    if !present {
                        continue;
                    }
                    let current = read(key).unwrap_or_default();
                    let result = write(key, &current);
                    if scope_of(spec, key, kernel) == Scope::RoInChild {
                        let denied = matches!(result, Err(Errno::EACCES | Errno::EPERM));
                        tally.claim(
                            key,
                            "ro_in_child: read-only in a child netns",
                            denied,
                            || format!("writing {current:?} back: {}", shown(&result)),
                        );
                    } else {
                        tally.claim(
                            key,
                            "netns: writable in a child netns",
                            result.is_ok(),
                            || format!("writing {current:?} back: {}", shown(&result)),
                        );
                        let bounds = spec.kernel_bounds_on(kernel);
                        if let (Some(bounds), 0, Ok(())) = (bounds, i, result) {
                            probe_bounds(spec, key, bounds, &mut tally);
                        }
                    }
                }
                Scope::Global | Scope::Ipc | Scope::Uts | Scope::User | Scope::Pid => {}
            }
        }
    }
    tally
}

/// Every claim checkable in the host, by reading only.
fn host_claims(specs: &[KeySpec], kernel: Version, tally: &mut Tally) {
    for spec in specs {
        for key in names(spec) {
            if let Some(module) = missing_module(&key) {
                tally.skipped.push(format!("{key} ({module} not loaded)"));
                continue;
            }
            tally.probed += 1;
            let present = path(&key).exists();
            match claims_to_exist(spec, kernel) {
                false => tally.claim(&key, "it does not exist (host)", !present, || {
                    "present".into()
                }),
                true => tally.claim(
                    &key,
                    &format!("it exists on {kernel} (host)"),
                    present,
                    || "absent".into(),
                ),
            }
        }
    }
}

/// The host's value of every key the probe writes (the netns-scoped ones), to prove it never
/// reached the host. Counters (`ro_in_child`, global) move by themselves and are left out.
fn host_values(specs: &[KeySpec], kernel: Version) -> BTreeMap<String, String> {
    let written = specs.iter().flat_map(|s| {
        let keys = names(s).into_iter();
        keys.filter(move |k| scope_of(s, k, kernel) == Scope::Netns)
    });
    written
        .filter_map(|k| read(&k).ok().map(|v| (k, v)))
        .collect()
}

#[test]
fn keys_yaml_matches_the_running_kernel_in_a_throwaway_namespace() {
    let Some(ns) = Netns::create() else { return };
    let schema = Schema::from_dir(&repo().join("schema")).expect("schema/ loads");
    let kernel: Version = read("kernel.osrelease").unwrap().parse().unwrap();
    // keys.yaml only: the generated catalogue is proved by tests/catalogue.rs.
    let curated: Vec<KeySpec> = schema
        .keys
        .iter()
        .filter(|s| !s.generated)
        .cloned()
        .collect();
    let host_before = host_values(&curated, kernel);

    let mut tally = Tally::default();
    host_claims(&curated, kernel, &mut tally);
    let specs = curated.clone();
    tally.merge(in_netns(&ns, move || child_claims(specs, kernel)));

    let host_after = host_values(&curated, kernel);
    let changed: Vec<_> = host_before
        .iter()
        .filter(|(k, v)| host_after.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v:?} -> {:?}", host_after.get(k)))
        .collect();

    println!(
        "schema fidelity: {} keys probed, {} claims confirmed, {} contradicted, {} skipped",
        tally.probed,
        tally.confirmed,
        tally.contradicted.len(),
        tally.skipped.len()
    );
    println!("  confirmed by kind: {:?}", tally.kinds);
    for skipped in &tally.skipped {
        println!("  skipped: {skipped}");
    }
    assert!(
        changed.is_empty(),
        "the HOST's sysctls changed during the probe:\n{}",
        changed.join("\n")
    );
    assert!(
        tally.contradicted.is_empty() && tally.harness.is_empty(),
        "{} schema claim(s) contradicted by kernel {kernel}:\n{}\nprobe harness failures:\n{}",
        tally.contradicted.len(),
        tally.contradicted.join("\n"),
        tally.harness.join("\n")
    );
    assert!(
        tally.probed >= 80 && tally.confirmed >= 2 * tally.probed,
        "too little was checked: {} keys, {} claims",
        tally.probed,
        tally.confirmed
    );
}
