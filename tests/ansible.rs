//! The Ansible example (examples/ansible/rollout.yml) run by real ansible-core, installed from
//! PyPI into a venv, against a fleet of four "hosts" that are network namespaces on this machine
//! (`ansible_connection: local`, each host's `sysprof` var is `sysprof --netns NAME …`).
//!
//! - A tripped canary: real loopback traffic in the canary's namespace (a listener with backlog
//!   1 that never accepts, and a burst of connects) raises TcpExt.ListenOverflows while
//!   `apply --watch` runs; sysprof rolls the canary back and fails the task, and
//!   `max_fail_percentage: 0` stops the play: no other host is ever touched.
//! - A healthy rollout: canary, then 30 %, then the rest; every host ends with the profile
//!   applied and persisted.
//!
//! Without network access to PyPI the test fails under SYSPROF_REQUIRE_NETNS=1 (CI), and says
//! loudly that it did not run otherwise.

mod common;
mod traffic;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{Netns, bin, repo};
use traffic::Burst;

/// What pip installs: recent enough for Python 3.11–3.13, pinned below the next major change.
const ANSIBLE_CORE: &str = "ansible-core>=2.15,<2.20";
const PROFILE: &str = "lvs-dr-backend.yaml";
/// Keys lvs-dr-backend.yaml changes in a fresh namespace, and the values it sets.
const KEYS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_fin_timeout", "20\n"),
    ("net.core.somaxconn", "16384\n"),
    ("net.ipv4.conf.all.arp_ignore", "1\n"),
];

fn required() -> bool {
    std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1")
}

fn not_run(why: &str) -> Option<PathBuf> {
    let message = format!("ANSIBLE TEST NOT RUN: {why}");
    if required() {
        panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
    }
    eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
    None
}

/// A venv with ansible-core, shared by the tests of this binary and reused across runs (a lock
/// file keeps concurrent runs from building it twice; a half-built one is rebuilt).
fn ansible_venv() -> Option<PathBuf> {
    static VENV: OnceLock<Option<PathBuf>> = OnceLock::new();
    VENV.get_or_init(|| {
        let tmp = std::env::temp_dir();
        let venv = tmp.join("sysprof-ansible-venv-2.15-2.20");
        let lock = std::fs::File::create(tmp.join("sysprof-ansible-venv.lock")).unwrap();
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
        let playbook = venv.join("bin/ansible-playbook");
        let works = || {
            Command::new(&playbook)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if works() {
            return Some(venv);
        }
        let _ = std::fs::remove_dir_all(&venv);
        match Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return not_run(&format!(
                    "python3 -m venv failed (install python3-venv): {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            Err(e) => return not_run(&format!("no python3 ({e})")),
        }
        let pip = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--quiet",
                ANSIBLE_CORE,
            ])
            .output()
            .unwrap();
        if !pip.status.success() || !works() {
            let why = String::from_utf8_lossy(&pip.stderr).into_owned();
            let _ = std::fs::remove_dir_all(&venv);
            return not_run(&format!(
                "pip install {ANSIBLE_CORE} failed (is PyPI reachable?): {why}"
            ));
        }
        Some(venv)
    })
    .clone()
}

/// The fleet: one namespace per host, with its own state dir, sysctl.d and profile dir.
struct Fleet {
    dir: tempfile::TempDir,
    hosts: Vec<(String, Netns)>,
}

impl Fleet {
    fn new(n: usize) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut hosts = Vec::new();
        for i in 0..n {
            let name = if i == 0 {
                "canary".to_owned()
            } else {
                format!("web{}", i + 1)
            };
            std::fs::create_dir_all(dir.path().join(&name).join("sysctl.d")).unwrap();
            hosts.push((name, Netns::create()?));
        }
        Some(Self { dir, hosts })
    }

    fn host_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn inventory(&self, venv: &Path) -> PathBuf {
        let mut yaml = String::from("sysprof_fleet:\n  hosts:\n");
        for (name, ns) in &self.hosts {
            let d = self.host_dir(name);
            let sysprof = format!(
                "{} --netns {} --state-dir {} --sysctl-d {}",
                bin().display(),
                ns.name,
                d.join("state").display(),
                d.join("sysctl.d").display()
            );
            yaml += &format!(
                "    {name}:\n      sysprof: \"{sysprof}\"\n      sysprof_profiles_dir: \"{}\"\n",
                d.join("profiles").display()
            );
        }
        yaml += &format!(
            "  vars:\n    ansible_connection: local\n    ansible_python_interpreter: \"{}\"\n",
            venv.join("bin/python").display()
        );
        let path = self.dir.path().join("inventory.yml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn play(&self, venv: &Path, watch: &str) -> (Output, String) {
        let tmp = self.dir.path().join("ansible-tmp");
        let out = Command::new(venv.join("bin/ansible-playbook"))
            .arg("-i")
            .arg(self.inventory(venv))
            .arg(repo().join("examples/ansible/rollout.yml"))
            .args([
                "-e",
                &format!("sysprof_profile={PROFILE}"),
                "-e",
                &format!("sysprof_watch={watch}"),
            ])
            .args(["-e", "sysprof_become=false", "-e"])
            .arg(format!(
                "sysprof_profiles_src={}",
                repo().join("profiles").display()
            ))
            .env("ANSIBLE_LOCAL_TEMP", &tmp)
            .env("ANSIBLE_HOME", self.dir.path().join("ansible-home"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("---- ansible-playbook (watch {watch}) ----\n{log}");
        (out, log)
    }

    fn values(&self, ns: &Netns) -> Vec<String> {
        KEYS.iter().map(|(k, _)| ns.read(k)).collect()
    }

    fn history(&self, name: &str) -> Vec<String> {
        let out = Command::new(bin())
            .args(["--state-dir"])
            .arg(self.host_dir(name).join("state"))
            .args(["--root", "/proc/sys", "history", "--format", "json"])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["record"]["kind"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn applied() -> Vec<String> {
    KEYS.iter().map(|(_, v)| v.to_string()).collect()
}

#[test]
fn a_tripped_canary_rolls_itself_back_and_stops_the_rollout() {
    let Some(venv) = ansible_venv() else { return };
    let Some(fleet) = Fleet::new(4) else { return };
    let before: Vec<Vec<String>> = fleet.hosts.iter().map(|(_, ns)| fleet.values(ns)).collect();
    assert!(
        before.iter().all(|v| *v != applied()),
        "fresh namespaces differ from the profile"
    );
    let canary = &fleet.hosts[0].1;
    // Traffic starts in the canary's namespace once the watched change is in its kernel.
    let _burst = Burst::when(
        &canary.name,
        9103,
        30.0,
        "/proc/sys/net/ipv4/tcp_fin_timeout",
        "20",
    );

    let (out, log) = fleet.play(&venv, "20s");
    assert!(!out.status.success(), "the play fails at the canary\n{log}");
    assert!(
        log.contains("health gate tripped") && log.contains("TcpExt.ListenOverflows rose by"),
        "{log}"
    );
    assert!(log.contains("rolled back lvs-dr-backend"), "{log}");
    assert!(
        log.contains("rc=8") || log.contains("\"rc\": 8"),
        "sysprof's exit code 8 reaches Ansible\n{log}"
    );

    assert_eq!(
        fleet.values(canary),
        before[0],
        "the canary rolled itself back"
    );
    assert!(
        !fleet
            .host_dir("canary")
            .join("sysctl.d/99-sysprof.conf")
            .exists()
    );
    assert_eq!(fleet.history("canary"), ["apply", "rollback"]);
    for (i, (name, ns)) in fleet.hosts.iter().enumerate().skip(1) {
        assert_eq!(fleet.values(ns), before[i], "{name} was never changed");
        assert!(
            !fleet.host_dir(name).join("profiles").exists(),
            "no task ever ran on {name}"
        );
        assert!(fleet.history(name).is_empty(), "{name} has no history");
    }
}

#[test]
fn a_healthy_staged_rollout_reaches_every_host() {
    let Some(venv) = ansible_venv() else { return };
    let Some(fleet) = Fleet::new(4) else { return };

    let (out, log) = fleet.play(&venv, "2s");
    assert!(out.status.success(), "{log}");
    // serial [1, "30%", "100%"] over 4 hosts: batches of 1, 1 and 2.
    assert_eq!(
        log.matches("TASK [Apply, watch the health gates").count(),
        3,
        "three batches\n{log}"
    );
    for (name, ns) in &fleet.hosts {
        assert_eq!(fleet.values(ns), applied(), "{name} has the profile");
        let persisted =
            std::fs::read_to_string(fleet.host_dir(name).join("sysctl.d/99-sysprof.conf")).unwrap();
        assert!(
            persisted.contains("net.core.somaxconn = 16384"),
            "{name}: {persisted}"
        );
        assert_eq!(
            fleet.history(name),
            ["apply", "apply"],
            "{name}: the watched apply, then its confirmation"
        );
        assert!(
            log.contains(&format!("{name}                 : ok=4"))
                || log.lines().any(|l| l.starts_with(name.as_str())
                    && l.contains("ok=4")
                    && l.contains("failed=0")),
            "{log}"
        );
    }
    assert!(
        log.contains("healthy for 2s: kept lvs-dr-backend, persisted to"),
        "{log}"
    );
}
