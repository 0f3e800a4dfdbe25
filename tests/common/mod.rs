//! Shared helpers for integration tests: run the real binary, build fake sysctl trees, and
//! create throwaway network namespaces (never touching the host's sysctls).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sysprof"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A shipped profile.
pub fn profile(name: &str) -> PathBuf {
    repo().join("profiles").join(name)
}

/// Result of one sysprof run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, printing both streams on mismatch.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A sandbox: state dir and sysctl.d dir in a tempdir, plus either a fake tree or a netns.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub args: Vec<String>,
}

impl Sandbox {
    fn with(args: Vec<String>, dir: tempfile::TempDir) -> Self {
        let mut all = vec![
            "--state-dir".into(),
            dir.path().join("state").display().to_string(),
            "--sysctl-d".into(),
            dir.path().join("sysctl.d").display().to_string(),
            "--color".into(),
            "never".into(),
        ];
        std::fs::create_dir_all(dir.path().join("sysctl.d")).unwrap();
        all.extend(args);
        Self { dir, args: all }
    }

    /// A sandbox over a fake tree holding `keys` (dotted key, value).
    pub fn fake(keys: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proc-sys");
        for (key, value) in keys {
            write_key(&root, key, value);
        }
        std::fs::create_dir_all(&root).unwrap();
        Self::with(vec!["--root".into(), root.display().to_string()], dir)
    }

    /// A sandbox whose root is the host's own /proc/sys, for commands that only read it
    /// (`validate` asks which keys exist): never use it for a command that writes.
    pub fn host_readonly() -> Self {
        Self::with(
            vec!["--root".into(), "/proc/sys".into()],
            tempfile::tempdir().unwrap(),
        )
    }

    /// A sandbox inside a network namespace.
    pub fn netns(ns: &Netns) -> Self {
        Self::with(
            vec!["--netns".into(), ns.name.clone()],
            tempfile::tempdir().unwrap(),
        )
    }

    /// The fake tree root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("proc-sys")
    }

    /// The state dir.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The persisted file.
    pub fn persisted(&self) -> PathBuf {
        self.dir.path().join("sysctl.d/99-sysprof.conf")
    }

    /// Runs sysprof with the sandbox's flags followed by `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(bin());
        cmd.args(&self.args).args(args).env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("run sysprof"))
    }

    /// Reads a key from the fake tree.
    pub fn fake_value(&self, key: &str) -> String {
        std::fs::read_to_string(self.root().join(rel(key))).unwrap()
    }

    /// Writes a file into the sandbox dir and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `net.ipv4.x` → `net/ipv4/x` (no dotted interface names in tests).
pub fn rel(key: &str) -> PathBuf {
    key.split('.').collect()
}

/// Writes one key into a fake tree.
pub fn write_key(root: &Path, key: &str, value: &str) {
    let path = root.join(rel(key));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{value}\n")).unwrap();
}

/// Every file under a directory with its bytes, for byte-identical comparisons.
pub fn snapshot_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    files.sort();
    files
}

/// A throwaway network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    /// Creates one, or explains loudly why not. With SYSPROF_REQUIRE_NETNS=1 (set by .ci/run)
    /// the inability is a failure; otherwise the caller skips.
    pub fn create() -> Option<Self> {
        let name = format!(
            "sysprof-t{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let result = Command::new("ip").args(["netns", "add", &name]).output();
        match result {
            Ok(out) if out.status.success() => {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"])
                    .status();
                Some(Self { name })
            }
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                let message = format!(
                    "REAL-KERNEL TEST NOT RUN: cannot create a network namespace ({}) — run as root with iproute2",
                    why.trim()
                );
                if std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1") {
                    panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
                }
                eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
                None
            }
        }
    }

    /// Reads a sysctl inside the namespace, independently of sysprof.
    pub fn read(&self, key: &str) -> String {
        let path = Path::new("/proc/sys").join(rel(key));
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "cat"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "read {key} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes a sysctl inside the namespace, independently of sysprof.
    pub fn write(&self, key: &str, value: &str) {
        let path = Path::new("/proc/sys").join(rel(key));
        let script = format!("echo '{value}' > {}", path.display());
        let ok = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", &script])
            .status()
            .unwrap()
            .success();
        assert!(ok, "write {key}={value} in {}", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Reads a host sysctl (read-only; used to prove tests never change the host).
pub fn host_value(key: &str) -> String {
    std::fs::read_to_string(Path::new("/proc/sys").join(rel(key))).unwrap()
}

/// A venv under the temp dir with `requirement` installed from PyPI, built once per machine and
/// reused while `probe` (a Python statement) runs in it; a lock file keeps concurrent test
/// binaries from building it twice, and a half-built one is rebuilt. `None` (after saying why
/// loudly) when python3, venv or PyPI is missing; a failure under SYSPROF_REQUIRE_NETNS=1.
pub fn pip_venv(name: &str, requirement: &str, probe: &str) -> Option<PathBuf> {
    let not_run = |why: String| {
        let message = format!("TEST NOT RUN: {why}");
        if std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1") {
            panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
        }
        eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
        None
    };
    let tmp = std::env::temp_dir();
    let venv = tmp.join(name);
    let lock = std::fs::File::create(tmp.join(format!("{name}.lock"))).unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive);
    let python = venv.join("bin/python");
    let works = || {
        Command::new(&python)
            .args(["-c", probe])
            .status()
            .is_ok_and(|s| s.success())
    };
    if works() {
        return Some(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    match Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stderr);
            return not_run(format!(
                "python3 -m venv failed (install python3-venv): {why}"
            ));
        }
        Err(e) => return not_run(format!("no python3 ({e})")),
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--quiet",
            requirement,
        ])
        .output()
        .unwrap();
    if !pip.status.success() || !works() {
        let why = String::from_utf8_lossy(&pip.stderr).into_owned();
        let _ = std::fs::remove_dir_all(&venv);
        return not_run(format!(
            "pip install {requirement} failed (is PyPI reachable?): {why}"
        ));
    }
    Some(venv)
}

/// `systemd-analyze verify` on unit files of `dir` (the binary path pointed at the built one);
/// without systemd-analyze, says so loudly (a failure under SYSPROF_REQUIRE_NETNS=1).
#[allow(dead_code)]
pub fn verify_units(dir: &Path, units: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    for unit in units {
        let text = std::fs::read_to_string(dir.join(unit)).unwrap();
        let text = text.replace("/usr/local/bin/sysprof", &bin().display().to_string());
        std::fs::write(tmp.path().join(unit), text).unwrap();
    }
    let paths: Vec<PathBuf> = units.iter().map(|u| tmp.path().join(u)).collect();
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output();
    let run = match verify {
        Ok(run) => run,
        Err(e) => {
            let message =
                format!("UNIT FILES NOT VERIFIED: no systemd-analyze ({e}); install systemd");
            if std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
            }
            eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
