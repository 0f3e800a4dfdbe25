//! The container image (Containerfile, scripts/build-image) and the Kubernetes manifests that use
//! it (examples/kubernetes).
//!
//! - The image is built for real with buildah or podman from Debian into a private vfs store:
//!   its config runs sysprof, its only files are the static binary (byte for byte the one
//!   scripts/build-static made), the shipped profiles and the schema, and podman runs it:
//!   `--version`, `validate` of every shipped profile, and a read-only `diff` inside the
//!   container's own network namespace (`--network none`: nothing is written anywhere).
//! - Every manifest in examples/kubernetes validates strictly against the Kubernetes OpenAPI
//!   schema, offline (PyPI's kubernetes-validate, which ships the schemas), and the DaemonSet runs
//!   the image scripts/build-image names.
//!
//! Without the tools (podman, buildah, runc; PyPI for kubernetes-validate) a test says so loudly
//! and fails under SYSPROF_REQUIRE_NETNS=1 (CI, whose .ci/run installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::repo;
use serde::Deserialize;

const K8S_VALIDATE: &str = "kubernetes-validate>=1.30,<2";
/// Kubernetes versions the manifests must be valid for: the examples' own and a recent one.
const K8S_VERSIONS: &[&str] = &["1.29", "1.33"];

fn not_run(what: &str, why: &str) {
    let message = format!("{what} NOT RUN: {why}");
    if std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
    }
    eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn has(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// podman with a private vfs image store in `dir` (vfs works on any filesystem, overlay not
/// always: the image is a few MiB, so copying layers costs nothing).
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("storage.conf"), conf).unwrap();
        Self { dir }
    }

    fn storage_conf(&self) -> PathBuf {
        self.dir.path().join("storage.conf")
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_STORAGE_CONF", self.storage_conf());
        cmd
    }

    /// `podman run` of the image: runc where installed (crun refuses hybrid cgroup hierarchies),
    /// and explicit limits (the default raises RLIMIT_NOFILE past what a sandbox may allow).
    fn run(&self, image: &str, args: &[&str]) -> Output {
        let mut cmd = self.cmd();
        if has("runc") {
            cmd.args(["--runtime", "runc"]);
        }
        cmd.args(["run", "--rm", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .arg(image)
            .args(args)
            .output()
            .unwrap()
    }
}

/// The static build's target dir, shared with tests/static_build.rs (cargo's lock serialises
/// the two; the second finds the binary built).
fn static_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("static-build")
}

#[derive(Deserialize)]
struct Doc(serde_json::Value);

fn yaml_docs(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Doc::deserialize(d).unwrap().0)
        .collect()
}

fn daemonset_image() -> String {
    let docs = yaml_docs(&repo().join("examples/kubernetes/node-daemonset.yaml"));
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    ds["spec"]["template"]["spec"]["initContainers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The regular files directly in `dir` (the image leaves subdirectories such as schema/gen out).
fn files_of(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_image_holds_the_static_binary_profiles_and_schema_and_runs() {
    if !has("podman") {
        return not_run(
            "IMAGE TEST",
            "podman is not installed (apt-get install podman buildah runc)",
        );
    }
    let podman = Podman::new();
    let built = Command::new(repo().join("scripts/build-image"))
        .env("CARGO_TARGET_DIR", static_target())
        .env("CONTAINERS_STORAGE_CONF", podman.storage_conf())
        .output()
        .unwrap();
    let log = text(&built);
    assert!(built.status.success(), "scripts/build-image failed\n{log}");
    let image = String::from_utf8(built.stdout.clone()).unwrap();
    let image = image.trim();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(image, format!("localhost/sysprof:{version}"), "{log}");
    assert_eq!(daemonset_image(), image, "the DaemonSet runs this image");
    assert!(log.contains("STEP"), "build progress on stderr\n{log}");

    // The config: sysprof is the entrypoint; the version label is the crate's.
    let inspect = podman
        .cmd()
        .args(["image", "inspect", image])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", text(&inspect));
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let config = &json[0]["Config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/bin/sysprof"])
    );
    assert_eq!(
        config["Labels"]["org.opencontainers.image.version"],
        version
    );
    assert_eq!(
        json[0]["RootFS"]["Layers"].as_array().unwrap().len(),
        1,
        "FROM scratch: one layer of our own"
    );

    // The files: exactly the binary, the profiles and the schema (no shell, no libc).
    let rootfs = podman.dir.path().join("rootfs.tar");
    let created = podman.cmd().args(["create", image]).output().unwrap();
    assert!(created.status.success(), "{}", text(&created));
    let id = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let export = podman
        .cmd()
        .args(["export", "-o"])
        .arg(&rootfs)
        .arg(&id)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", text(&export));
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&rootfs)
        .output()
        .unwrap();
    let mut files: Vec<String> = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(str::to_owned)
        .collect();
    files.sort();
    let mut expected = vec!["usr/bin/sysprof".to_owned()];
    for dir in ["profiles", "schema"] {
        expected.extend(
            files_of(dir)
                .into_iter()
                .map(|f| format!("usr/share/sysprof/{dir}/{f}")),
        );
    }
    expected.sort();
    assert_eq!(files, expected);
    let inside = Command::new("tar")
        .arg("-xOf")
        .arg(&rootfs)
        .arg("usr/bin/sysprof")
        .output()
        .unwrap()
        .stdout;
    let host = static_target().join(format!("{}/release/sysprof", host_triple()));
    assert!(
        inside == std::fs::read(&host).unwrap(),
        "the image's binary is {}",
        host.display()
    );

    // Run it.
    let out = podman.run(image, &["--version"]);
    assert!(out.status.success(), "podman run failed\n{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sysprof {version}")
    );
    let mut validate = vec!["--color", "never", "validate"];
    let paths: Vec<String> = files_of("profiles")
        .into_iter()
        .map(|f| format!("/usr/share/sysprof/profiles/{f}"))
        .collect();
    validate.extend(paths.iter().map(String::as_str));
    let out = podman.run(image, &validate);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches(": valid (0 error(s)").count(),
        paths.len(),
        "{log}"
    );
    let out = podman.run(
        image,
        &[
            "--color",
            "never",
            "--format",
            "json",
            "diff",
            "/usr/share/sysprof/profiles/lvs-dr-backend.yaml",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        plan["plan"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"] == "net.core.somaxconn" && c["desired"] == "16384"),
        "{plan}"
    );
}

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .to_owned()
}

/// A venv with kubernetes-validate, reused across runs (built under a lock).
fn k8s_validate() -> Option<PathBuf> {
    static VENV: OnceLock<Option<PathBuf>> = OnceLock::new();
    VENV.get_or_init(|| {
        let tmp = std::env::temp_dir();
        let venv = tmp.join("sysprof-k8s-validate-venv-1");
        let lock = std::fs::File::create(tmp.join("sysprof-k8s-validate-venv.lock")).unwrap();
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
        let tool = venv.join("bin/kubernetes-validate");
        if has(tool.to_str().unwrap()) {
            return Some(tool);
        }
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output();
        if !made.as_ref().is_ok_and(|o| o.status.success()) {
            not_run(
                "KUBERNETES SCHEMA TEST",
                "python3 -m venv failed (install python3-venv)",
            );
            return None;
        }
        let pip = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--quiet",
                K8S_VALIDATE,
            ])
            .output()
            .unwrap();
        if !pip.status.success() || !has(tool.to_str().unwrap()) {
            let _ = std::fs::remove_dir_all(&venv);
            not_run(
                "KUBERNETES SCHEMA TEST",
                &format!(
                    "pip install {K8S_VALIDATE} failed (is PyPI reachable?): {}",
                    text(&pip)
                ),
            );
            return None;
        }
        Some(tool)
    })
    .clone()
}

#[test]
fn the_kubernetes_manifests_match_the_openapi_schema() {
    let Some(tool) = k8s_validate() else { return };
    let manifests: Vec<PathBuf> = files_of("examples/kubernetes")
        .into_iter()
        .filter(|f| f.ends_with(".yaml"))
        .map(|f| repo().join("examples/kubernetes").join(f))
        .collect();
    assert!(manifests.len() >= 2, "{manifests:?}");
    let documents: usize = manifests.iter().map(|m| yaml_docs(m).len()).sum();
    for version in K8S_VERSIONS {
        let out = Command::new(&tool)
            .args(["--strict", "-k", version])
            .args(&manifests)
            .output()
            .unwrap();
        let log = text(&out);
        assert!(out.status.success(), "Kubernetes {version}:\n{log}");
        assert_eq!(
            log.matches(" passed for resource ").count(),
            documents,
            "{log}"
        );
    }

    // The check can fail: a field the schema does not know, in a copy of the DaemonSet.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("daemonset.yaml");
    let text_in = std::fs::read_to_string(repo().join("examples/kubernetes/node-daemonset.yaml"))
        .unwrap()
        .replace(
            "hostNetwork: true",
            "hostNetwork: true\n      hostNetworking: true",
        );
    std::fs::write(&broken, text_in).unwrap();
    let out = Command::new(&tool)
        .args(["--strict", "-k", K8S_VERSIONS[0]])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("hostNetworking"), "{}", text(&out));
}
