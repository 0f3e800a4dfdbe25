//! The Ansible collection (ansible/collections/…/sysprof/sysprof) and the playbooks of
//! examples/ansible, run by real ansible-core installed from PyPI into a venv, against a fleet of
//! four "hosts" that are network namespaces on this machine (`ansible_connection: local`; each
//! host's module options name its namespace, state dir and sysctl.d dir). Ansible finds the
//! collection through examples/ansible/ansible.cfg, which points at the repository's copy.
//!
//! - The module documents itself (`ansible-doc`), and the collection builds and installs with
//!   `ansible-galaxy`.
//! - `--check --diff` changes nothing (the namespaces' sysctls are read directly, and no state,
//!   persisted file or profile copy appears) and shows every key before → after and the
//!   persisted file; a real run changes the keys; a re-run reports `changed=0`; the rollback
//!   playbook restores every key and removes the persisted file, and is idempotent too.
//! - A tripped canary: real loopback traffic in the canary's namespace (a listener with backlog
//!   1 that never accepts, and a burst of connects) raises TcpExt.ListenOverflows while the
//!   watched apply runs; sysprof rolls the canary back, the module fails the task naming the
//!   gate, and `max_fail_percentage: 0` stops the play: no other host is ever touched. Then,
//!   ad hoc on an untouched host: outside a rollout stage the task is `ok` (sysprof exit 9);
//!   inside, `confirm_within` applies without persisting; `state: rolled_back` undoes that, and
//!   again reports nothing in effect; an invalid profile fails naming its findings' rule ids.
//!
//! Without network access to PyPI the test fails under SYSPROF_REQUIRE_NETNS=1 (CI), and says
//! loudly that it did not run otherwise.

mod common;
mod traffic;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{Netns, bin, repo};
use sysprof::error::exit;
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
const COLLECTION: &str = "ansible/collections/ansible_collections/sysprof/sysprof";

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

/// An Ansible command from the venv with a quiet, colourless, per-test environment that finds
/// the collection through examples/ansible/ansible.cfg.
fn ansible(venv: &Path, tool: &str, home: &Path) -> Command {
    let mut cmd = Command::new(venv.join("bin").join(tool));
    cmd.env(
        "ANSIBLE_CONFIG",
        repo().join("examples/ansible/ansible.cfg"),
    )
    .env("ANSIBLE_LOCAL_TEMP", home.join("local-tmp"))
    .env("ANSIBLE_HOME", home.join("ansible-home"))
    .env("ANSIBLE_NOCOLOR", "1")
    .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
    .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
    // One process per task instead of copying each module over first: with local "hosts" on
    // a 2-core CI machine, per-task overhead is the bulk of the run.
    .env("ANSIBLE_PIPELINING", "1")
    .env("LC_ALL", "C.UTF-8")
    .env_remove("ANSIBLE_COLLECTIONS_PATH");
    cmd
}

fn log_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The fleet: one namespace per host, with its own state dir, sysctl.d and profile dir.
struct Fleet {
    dir: tempfile::TempDir,
    hosts: Vec<(String, Netns)>,
}

impl Fleet {
    fn new(n: usize) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        // The profile and its parent only: Ansible copies a directory file by file, two module
        // runs per file and host.
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        for file in [PROFILE, "base.yaml"] {
            std::fs::copy(repo().join("profiles").join(file), src.join(file)).unwrap();
        }
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

    fn persisted(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("sysctl.d/99-sysprof.conf")
    }

    fn inventory(&self, venv: &Path) -> PathBuf {
        let mut yaml = String::from("sysprof_fleet:\n  hosts:\n");
        for (name, ns) in &self.hosts {
            let d = self.host_dir(name);
            yaml += &format!(
                "    {name}:\n      sysprof_netns: {}\n      sysprof_state_dir: \"{}\"\n      sysprof_sysctl_d: \"{}\"\n      sysprof_profiles_dir: \"{}\"\n",
                ns.name,
                d.join("state").display(),
                d.join("sysctl.d").display(),
                d.join("profiles").display()
            );
        }
        yaml += &format!(
            "  vars:\n    ansible_connection: local\n    ansible_python_interpreter: \"{}\"\n    sysprof_binary: \"{}\"\n",
            venv.join("bin/python").display(),
            bin().display()
        );
        let path = self.dir.path().join("inventory.yml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// Runs one of examples/ansible's playbooks with extra arguments.
    fn play(&self, venv: &Path, playbook: &str, args: &[&str]) -> (Output, String) {
        let started = std::time::Instant::now();
        let out = ansible(venv, "ansible-playbook", self.dir.path())
            .arg("-i")
            .arg(self.inventory(venv))
            .arg(repo().join("examples/ansible").join(playbook))
            .args(["-e", &format!("sysprof_profile={PROFILE}")])
            .args(["-e", "sysprof_become=false", "-e"])
            .arg(format!(
                "sysprof_profiles_src={}",
                self.dir.path().join("src").display()
            ))
            .args(args)
            // The module's and tempfile's scratch directories land here, to be checked.
            .env("TMPDIR", self.dir.path().join("tmp"))
            .output()
            .unwrap();
        let log = log_of(&out);
        println!(
            "---- ansible-playbook {playbook} {args:?} ({:.1}s) ----\n{log}",
            started.elapsed().as_secs_f64()
        );
        (out, log)
    }

    fn values(&self, ns: &Netns) -> Vec<String> {
        KEYS.iter().map(|(k, _)| ns.read(k)).collect()
    }

    fn all_values(&self) -> Vec<Vec<String>> {
        self.hosts.iter().map(|(_, ns)| self.values(ns)).collect()
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

    /// Runs the module once on `host` (ad hoc) with `args` plus the host's binary, namespace
    /// and directories; returns the task result.
    fn adhoc(&self, venv: &Path, host: usize, args: serde_json::Value) -> serde_json::Value {
        let (name, ns) = &self.hosts[host];
        let mut args = args;
        args["binary"] = bin().display().to_string().into();
        args["netns"] = ns.name.clone().into();
        args["state_dir"] = self
            .host_dir(name)
            .join("state")
            .display()
            .to_string()
            .into();
        args["sysctl_d"] = self
            .host_dir(name)
            .join("sysctl.d")
            .display()
            .to_string()
            .into();
        let out = ansible(venv, "ansible", self.dir.path())
            .arg("-i")
            .arg(self.inventory(venv))
            .arg(name)
            .args(["-m", "sysprof.sysprof.profile", "-a"])
            .arg(args.to_string())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("---- ansible {name} -m sysprof.sysprof.profile -a {args} ----\n{stdout}");
        // `NAME | STATUS => {…}`; the status (SUCCESS, CHANGED, FAILED!) goes in as `status`.
        let (head, result) = stdout
            .split_once(" => ")
            .unwrap_or_else(|| panic!("{}", log_of(&out)));
        let mut result: serde_json::Value = serde_json::from_str(result.trim()).unwrap();
        result["status"] = head.rsplit("| ").next().unwrap().into();
        result
    }

    /// Leftovers of check mode's scratch directories (the module's and the playbook's).
    fn scratch_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

fn applied() -> Vec<String> {
    KEYS.iter().map(|(_, v)| v.to_string()).collect()
}

/// The PLAY RECAP counters of one host (`ok`, `changed`, `failed`, …).
fn recap(log: &str, host: &str) -> HashMap<String, u32> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(host) && l.contains(" : ok="))
        .unwrap_or_else(|| panic!("no recap line for {host}\n{log}"));
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}

#[test]
fn the_module_knows_every_exit_code_as_the_readme_states_it() {
    let module =
        std::fs::read_to_string(repo().join(COLLECTION).join("plugins/modules/profile.py"))
            .unwrap();
    let table: Vec<(i32, String)> = module
        .lines()
        .skip_while(|l| !l.starts_with("EXIT_MEANINGS = {"))
        .skip(1)
        .take_while(|l| *l != "}")
        .map(|l| {
            let (code, text) = l.trim().split_once(": ").unwrap();
            let text = text.trim_end_matches(',').trim_matches('"');
            (code.parse().unwrap(), text.to_owned())
        })
        .collect();
    let expected: Vec<(i32, String)> = exit::TABLE
        .iter()
        .map(|(c, t)| (*c, (*t).to_owned()))
        .collect();
    assert_eq!(table, expected);
}

#[test]
fn the_module_documents_itself_and_the_collection_builds() {
    let Some(venv) = ansible_venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let doc = ansible(&venv, "ansible-doc", dir.path())
        .arg("sysprof.sysprof.profile")
        .output()
        .unwrap();
    let text = log_of(&doc);
    assert!(doc.status.success(), "{text}");
    for needle in [
        "sysprof.sysprof.profile",
        "rolled_back",
        "check_mode",
        "diff_mode",
        "stage: canary",
        "RETURN VALUES",
        "not_in_stage",
    ] {
        assert!(
            text.contains(needle),
            "ansible-doc lacks {needle:?}\n{text}"
        );
    }

    let json = ansible(&venv, "ansible-doc", dir.path())
        .args(["--json", "sysprof.sysprof.profile"])
        .output()
        .unwrap();
    assert!(json.status.success(), "{}", log_of(&json));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let module = &json["sysprof.sysprof.profile"];
    let mut options: Vec<&str> = module["doc"]["options"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    options.sort();
    assert_eq!(
        options,
        [
            "binary",
            "confirm_within",
            "host_id",
            "netns",
            "path",
            "persist",
            "stage",
            "state",
            "state_dir",
            "sysctl_d",
            "watch"
        ]
    );
    assert_eq!(
        module["doc"]["options"]["state"]["choices"],
        serde_json::json!(["applied", "rolled_back"])
    );
    assert!(module["return"]["changes"].is_object());
    assert!(
        module["examples"]
            .as_str()
            .unwrap()
            .contains("state: rolled_back")
    );

    // The collection builds into a tarball that installs and documents itself from there.
    // Without examples/ansible/ansible.cfg, which would make the repository's copy count as
    // installed already.
    let built = ansible(&venv, "ansible-galaxy", dir.path())
        .env_remove("ANSIBLE_CONFIG")
        .args(["collection", "build", "--output-path"])
        .arg(dir.path())
        .arg(repo().join(COLLECTION))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", log_of(&built));
    let tarball = dir.path().join("sysprof-sysprof-0.1.0.tar.gz");
    assert!(tarball.exists(), "{}", log_of(&built));
    let installed = dir.path().join("installed");
    let install = ansible(&venv, "ansible-galaxy", dir.path())
        .env_remove("ANSIBLE_CONFIG")
        .args(["collection", "install", "--offline", "-p"])
        .arg(&installed)
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(install.status.success(), "{}", log_of(&install));
    let doc = ansible(&venv, "ansible-doc", dir.path())
        .env_remove("ANSIBLE_CONFIG")
        .env("ANSIBLE_COLLECTIONS_PATH", &installed)
        .args(["--list", "sysprof.sysprof"])
        .output()
        .unwrap();
    let text = log_of(&doc);
    assert!(
        doc.status.success() && text.contains("sysprof.sysprof.profile"),
        "{text}"
    );
}

#[test]
fn preview_apply_rerun_and_roll_back_with_the_module() {
    let Some(venv) = ansible_venv() else { return };
    let Some(fleet) = Fleet::new(4) else { return };
    let before = fleet.all_values();
    assert!(
        before.iter().all(|v| *v != applied()),
        "fresh namespaces differ from the profile"
    );

    // Check + diff: every key and the persisted file shown, nothing written anywhere.
    let (out, log) = fleet.play(
        &venv,
        "rollout.yml",
        &["-e", "sysprof_watch=2s", "--check", "--diff"],
    );
    assert!(out.status.success(), "{log}");
    assert_eq!(
        fleet.all_values(),
        before,
        "check mode changed a sysctl\n{log}"
    );
    for (i, (name, ns)) in fleet.hosts.iter().enumerate() {
        let somaxconn = before[i][1].trim();
        for line in [
            format!("--- before: sysctl (netns {}) before", ns.name),
            format!("-net.core.somaxconn = {somaxconn}"),
            format!("--- before: {} (absent)", fleet.persisted(name).display()),
            format!("+++ after: {}", fleet.persisted(name).display()),
        ] {
            assert!(
                log.contains(&line),
                "{name}: no {line:?} in the diff\n{log}"
            );
        }
        assert!(!fleet.persisted(name).exists(), "{name}: file written");
        assert!(
            !fleet.host_dir(name).join("state").exists(),
            "{name}: state"
        );
        assert!(!fleet.host_dir(name).join("profiles").exists(), "{name}");
        // Shipping the profiles and the sysprof task would change; the scratch copy does not count.
        assert_eq!(recap(&log, name)["failed"], 0);
        assert_eq!(recap(&log, name)["changed"], 2, "{name}");
    }
    assert!(log.contains("+net.core.somaxconn = 16384"), "{log}");
    assert!(log.contains("+net.ipv4.tcp_fin_timeout = 20"), "{log}");
    assert!(log.contains("would change 13 key(s), would write"), "{log}");
    assert_eq!(
        fleet.scratch_left(),
        Vec::<PathBuf>::new(),
        "scratch dirs left"
    );

    // The real run: canary, 20 %, the rest; every host watched, then persisted.
    let (out, log) = fleet.play(&venv, "rollout.yml", &["-e", "sysprof_watch=2s"]);
    assert!(out.status.success(), "{log}");
    // serial [1, "20%", "100%"] over 4 hosts: batches of 1, 1 (20 % rounds up to one) and 2.
    assert_eq!(
        log.matches("TASK [Apply, watch the health gates").count(),
        3,
        "three batches\n{log}"
    );
    for (name, ns) in &fleet.hosts {
        assert_eq!(fleet.values(ns), applied(), "{name} has the profile");
        let persisted = std::fs::read_to_string(fleet.persisted(name)).unwrap();
        assert!(persisted.contains("net.core.somaxconn = 16384"), "{name}");
        assert_eq!(
            fleet.history(name),
            ["apply", "apply"],
            "{name}: the watched apply, then its persisting record"
        );
        assert_eq!(recap(&log, name)["failed"], 0);
        assert!(recap(&log, name)["changed"] >= 1);
    }
    assert!(
        log.contains("lvs-dr-backend: healthy watch, 13 key(s) kept, persisted to"),
        "{log}"
    );

    // Again: the hosts are in sync, nothing changes.
    let (out, log) = fleet.play(&venv, "rollout.yml", &["-e", "sysprof_watch=2s"]);
    assert!(out.status.success(), "{log}");
    for (name, _) in &fleet.hosts {
        assert_eq!(recap(&log, name)["changed"], 0, "{name}\n{log}");
        assert_eq!(fleet.history(name).len(), 2, "{name}: nothing recorded");
    }
    assert!(
        log.contains("lvs-dr-backend: in sync, nothing to change"),
        "{log}"
    );

    // Roll back with a diff, then again (nothing of the profile is in effect any more).
    let (out, log) = fleet.play(&venv, "rollback.yml", &["--diff"]);
    assert!(out.status.success(), "{log}");
    assert_eq!(fleet.all_values(), before, "every key restored\n{log}");
    for (i, (name, _)) in fleet.hosts.iter().enumerate() {
        assert!(!fleet.persisted(name).exists(), "{name}: file removed");
        assert_eq!(fleet.history(name), ["apply", "apply", "rollback"]);
        assert_eq!(recap(&log, name)["changed"], 1, "{name}");
        let restored = format!("+net.core.somaxconn = {}", before[i][1].trim());
        assert!(log.contains(&restored), "{restored}\n{log}");
    }
    assert!(log.contains("-net.core.somaxconn = 16384"), "{log}");
    let (out, log) = fleet.play(&venv, "rollback.yml", &[]);
    assert!(out.status.success(), "{log}");
    for (name, _) in &fleet.hosts {
        assert_eq!(recap(&log, name)["changed"], 0, "{name}\n{log}");
    }
}

#[test]
fn a_tripped_canary_rolls_itself_back_and_stops_the_rollout() {
    let Some(venv) = ansible_venv() else { return };
    let Some(fleet) = Fleet::new(4) else { return };
    let before = fleet.all_values();
    let canary = &fleet.hosts[0].1;
    // Traffic starts in the canary's namespace once the watched change is in its kernel.
    let _burst = Burst::when(
        &canary.name,
        9103,
        30.0,
        "/proc/sys/net/ipv4/tcp_fin_timeout",
        "20",
    );

    let (out, log) = fleet.play(&venv, "rollout.yml", &["-e", "sysprof_watch=20s"]);
    assert!(!out.status.success(), "the play fails at the canary\n{log}");
    assert!(
        log.contains("sysprof apply failed with exit 8 [a health gate tripped (apply --watch rolled the change back)]: health gate tripped: TcpExt.ListenOverflows rose by"),
        "the module names the exit code, its meaning and the gate\n{log}"
    );
    assert!(
        log.contains("rolled back lvs-dr-backend: 13 key(s) restored"),
        "{log}"
    );
    assert_eq!(recap(&log, "canary")["failed"], 1);

    assert_eq!(
        fleet.values(canary),
        before[0],
        "the canary rolled itself back"
    );
    assert!(!fleet.persisted("canary").exists());
    assert_eq!(fleet.history("canary"), ["apply", "rollback"]);
    for (i, (name, ns)) in fleet.hosts.iter().enumerate().skip(1) {
        assert_eq!(fleet.values(ns), before[i], "{name} was never changed");
        assert!(
            !fleet.host_dir(name).join("profiles").exists(),
            "no task ever ran on {name}"
        );
        assert!(!fleet.host_dir(name).join("state").exists(), "{name}");
        assert!(
            !log.contains(&format!("{name} ")),
            "{name} is not even in the recap"
        );
    }

    // The module's other paths, ad hoc on an untouched host (in parallel with the long test):
    // outside a stage is `ok`; inside, confirm-or-revert; rolled back, then nothing in effect.
    let staged = fleet.dir.path().join("src/staged.yaml");
    std::fs::write(
        &staged,
        format!("version: 1\nname: staged\nextends: [{PROFILE}]\nrollout:\n  stages: [{{name: nobody, percent: 0.001}}, {{name: everyone, percent: 100}}]\n"),
    )
    .unwrap();
    let path = staged.display().to_string();
    let web2 = &fleet.hosts[1].1;
    let outside = fleet.adhoc(
        &venv,
        1,
        serde_json::json!({"path": path, "stage": "nobody", "host_id": "web2"}),
    );
    assert_eq!(outside["outcome"], "not_in_stage", "{outside}");
    assert_eq!(outside["changed"], false);
    assert_eq!(outside["status"], "SUCCESS", "exit 9 is not a failure");
    assert_eq!(outside["stage"]["in_stage"], false);
    assert_eq!(fleet.values(web2), before[1]);
    let pending = fleet.adhoc(
        &venv,
        1,
        serde_json::json!({"path": path, "stage": "everyone", "host_id": "web2", "confirm_within": "30s"}),
    );
    assert_eq!(pending["outcome"], "awaiting_confirmation", "{pending}");
    assert_eq!(pending["changed"], true);
    assert_eq!(pending["changes"].as_array().unwrap().len(), 13);
    assert_eq!(fleet.values(web2), applied());
    assert!(
        !fleet.persisted("web2").exists(),
        "not persisted before `confirm`"
    );
    let undone = fleet.adhoc(
        &venv,
        1,
        serde_json::json!({"path": path, "state": "rolled_back"}),
    );
    assert_eq!(undone["outcome"], "rolled_back", "{undone}");
    assert_eq!(undone["changed"], true);
    assert_eq!(fleet.values(web2), before[1]);
    let again = fleet.adhoc(
        &venv,
        1,
        serde_json::json!({"path": path, "state": "rolled_back"}),
    );
    assert_eq!(again["outcome"], "nothing_in_effect", "{again}");
    assert_eq!(again["changed"], false);

    // An invalid profile fails naming every finding by rule id and place.
    let invalid = fleet.dir.path().join("src/invalid.yaml");
    std::fs::write(
        &invalid,
        "version: 1\nname: invalid\ncontext: {nat: true}\nsysctls:\n  net.ipv4.tcp_timestamps: 0\n  vm.swappiness: 10\n",
    )
    .unwrap();
    let refused = fleet.adhoc(
        &venv,
        2,
        serde_json::json!({"path": invalid.display().to_string()}),
    );
    let msg = refused["msg"].as_str().unwrap();
    assert_eq!(refused["status"], "FAILED!", "{refused}");
    assert!(
        msg.starts_with("sysprof apply failed with exit 3 [invalid profile, key or value (nothing was changed)]: error[not-writable-in-netns] vm.swappiness: ")
            && msg.contains(&format!("at {}:6:3", invalid.display())),
        "{msg}"
    );
    let rules: Vec<&str> = refused["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["timestamps-off", "not-writable-in-netns"]);
    assert_eq!(fleet.values(&fleet.hosts[2].1), before[2]);
}
