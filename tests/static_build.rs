//! The binary shipped to fleets and measured by bench/run (`scripts/build-static`): built for
//! real, it has no program interpreter (no dynamic loader, no shared libraries), and it does what
//! the test build does: validates every shipped profile, exports and applies on a fake tree, and
//! stamps its records with the user name from /etc/passwd (it cannot use NSS).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, repo, write_key};

/// Builds with scripts/build-static into its own target dir (the test run holds the lock on the
/// usual one) and returns the binary's path.
fn build_static() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("static-build");
    let out = Command::new(repo().join("scripts/build-static"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run scripts/build-static");
    assert!(
        out.status.success(),
        "scripts/build-static failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(path.starts_with(&target), "{}", path.display());
    path
}

/// The ELF program header types of a 64-bit little-endian executable.
fn program_headers(path: &Path) -> Vec<u32> {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "64-bit little-endian expected");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count)
        .map(|i| {
            let at = phoff + i * size;
            u32::from_le_bytes(elf[at..at + 4].try_into().unwrap())
        })
        .collect()
}

/// The ELF file type (`e_type`) of an executable.
fn elf_type(path: &Path) -> u16 {
    let elf = std::fs::read(path).unwrap();
    u16::from_le_bytes([elf[0x10], elf[0x11]])
}

const ET_EXEC: u16 = 2;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

#[test]
fn the_fleet_binary_is_static_and_behaves_like_the_test_build() {
    let fleet = build_static();
    let headers = program_headers(&fleet);
    assert!(!headers.contains(&PT_INTERP), "a dynamic loader is named");
    // The test build is dynamic: the check above can tell the difference.
    assert!(program_headers(&bin()).contains(&PT_INTERP));
    // Not position-independent: a static PIE relocates the embedded schema's pointers at every
    // start (see scripts/build-static); an executable linked at a fixed address has nothing to
    // relocate and no dynamic section at all.
    assert_eq!(elf_type(&fleet), ET_EXEC, "the fleet binary is a PIE");
    assert!(!headers.contains(&PT_DYNAMIC), "a dynamic section is left");

    let profiles: Vec<PathBuf> = std::fs::read_dir(repo().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    let run = |binary: &Path, args: &[&str], root: &Path, state: &Path| {
        let out = Command::new(binary)
            .args(["--root", root.to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap(), "--no-persist"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sys");
    for (key, value) in [
        ("net.core.somaxconn", "4096\n"),
        ("net.ipv4.tcp_fin_timeout", "60\n"),
        ("net.ipv4.ip_local_port_range", "32768\t60999\n"),
        ("vm.swappiness", "60\n"),
    ] {
        write_key(&root, key, value);
    }
    let profile = dir.path().join("p.yaml");
    std::fs::write(
        &profile,
        "version: 1\nname: p\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n",
    )
    .unwrap();

    let mut validate = vec!["validate", "--kernel", "6.1"];
    validate.extend(profiles.iter().map(|p| p.to_str().unwrap()));
    let checks: [&[&str]; 2] = [&validate, &["export"]];
    for args in checks {
        let fleet_run = run(&fleet, args, &root, &dir.path().join("state"));
        let test_run = run(&bin(), args, &root, &dir.path().join("state"));
        assert_eq!(fleet_run.0, Some(0), "{args:?}: {}", fleet_run.1);
        assert_eq!(
            fleet_run, test_run,
            "{args:?}: the fleet and test builds disagree"
        );
    }
    let state = dir.path().join("state");
    let applied = run(&fleet, &["apply", profile.to_str().unwrap()], &root, &state);
    assert_eq!(applied.0, Some(0), "{}", applied.1);
    let value = std::fs::read_to_string(root.join("net/ipv4/tcp_fin_timeout")).unwrap();
    assert_eq!(value.trim(), "30");

    // The record names the user: from /etc/passwd, without NSS.
    let record = std::fs::read_dir(state.join("records"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("apply made a record");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    let uid = nix::unistd::getuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(uid.to_string().as_str()))
        .and_then(|l| l.split(':').next())
        .unwrap_or_default();
    assert_eq!(record["user"], format!("{uid}({name})"));
}
