//! The kernel lab (README "Kernel lab"): `scripts/kernel-lab test` boots Debian's 5.10, 6.1 and
//! 6.12 cloud kernels under qemu and runs the lab suite in throwaway guests — global keys
//! written for real, `validate --kernel X` against kernel X, the bounds probe, reboots with the
//! boot-time sysctl pass, confirm-or-revert across a reboot, kill -9 then recover. This test
//! runs it (fetching kernels into the lab cache when missing), prints its output and asserts
//! that every check passed on every kernel.
//!
//! When qemu, the helper tools or a kernel cannot be had, the test says exactly why; under
//! SYSPROF_REQUIRE_NETNS=1 (CI) that is a failure, otherwise a loud skip.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::repo;

/// Tools the lab runs on the host, and the Debian package that has each.
const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("mke2fs", "e2fsprogs"),
    ("python3", "python3"),
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("ldd", "libc-bin"),
];

/// Says why the lab cannot run: a failure with SYSPROF_REQUIRE_NETNS=1, else a loud skip.
fn cannot_run(why: &str) {
    let message = format!("KERNEL LAB NOT RUN: {why}");
    if std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
    }
    eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// What is missing on this host, if anything.
fn missing_prerequisite() -> Option<String> {
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|(tool, package)| format!("{tool} (apt-get install {package})"))
        .collect();
    if !missing.is_empty() {
        return Some(format!("missing {}", missing.join(", ")));
    }
    let static_busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .any(|p| std::fs::read(p).is_ok_and(|elf| !elf.windows(9).any(|w| w == b"/ld-linux")));
    if !static_busybox {
        return Some("no static busybox (apt-get install busybox-static)".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (the lab cache and the guests' disks need it)".into());
    }
    None
}

/// The lab command with the target dir tests/static_build.rs uses for the static binary.
fn kernel_lab(args: &[&str]) -> Command {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let mut cmd = Command::new(repo().join("scripts/kernel-lab"));
    cmd.args(args).env("CARGO_TARGET_DIR", target);
    cmd
}

/// Runs the lab, echoing every line as it comes; returns the exit code and the output.
fn run_streaming(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start scripts/kernel-lab");
    let mut output = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("read the lab's output");
        println!("{line}");
        output.push_str(&line);
        output.push('\n');
    }
    (child.wait().expect("wait for the lab").code(), output)
}

#[test]
fn kernel_lab_suite_passes_on_every_kernel() {
    if let Some(why) = missing_prerequisite() {
        return cannot_run(&why);
    }
    let fetch = kernel_lab(&["fetch"])
        .output()
        .expect("run scripts/kernel-lab fetch");
    if !fetch.status.success() {
        let stderr = String::from_utf8_lossy(&fetch.stderr);
        return cannot_run(&format!(
            "scripts/kernel-lab fetch failed (kernels or images could not be had): {}",
            stderr.trim()
        ));
    }
    let (code, output) = run_streaming(kernel_lab(&["test"]));
    let summary: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("lab ") && l.contains(" passed, "))
        .collect();
    for release in ["5.10.", "6.1.", "6.12."] {
        assert!(
            summary
                .iter()
                .any(|l| l.starts_with(&format!("lab {release}"))),
            "no summary line for {release}x in the lab's output"
        );
    }
    let last: Vec<&str> = output.lines().rev().take(summary.len()).collect();
    assert!(
        last.iter().all(|l| summary.contains(l)),
        "the output does not end with the summary lines"
    );
    assert_eq!(
        code,
        Some(0),
        "the kernel lab failed:\n{}",
        summary.join("\n")
    );
    assert!(summary.iter().all(|l| l.ends_with(" 0 failed")));
}

#[test]
fn lab_host_side_unit_tests_pass() {
    if !on_path("python3") {
        return cannot_run("python3 not found (apt-get install python3)");
    }
    let out = Command::new("python3")
        .args(["-B", "-m", "unittest", "lab.test_lab"])
        .current_dir(repo().join("scripts"))
        .output()
        .expect("run python3 -m unittest");
    assert!(
        out.status.success(),
        "scripts/lab/test_lab.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
