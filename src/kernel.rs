//! Reading and writing sysctls under a root directory: /proc/sys, or a fake tree in tests.
//!
//! [`SysctlTree`] is the only code that touches sysctl files. Every open is relative to a
//! directory handle on the root and resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! so neither a key nor a symlink planted in a fake tree can reach outside the root. Writes are a
//! single `write(2)` of the whole value (how the kernel parses sysctls) and errors are classified
//! by errno into [`KernelFault`]s naming the key. Which network namespace `/proc/sys/net`
//! reflects is decided before this handle is used (`netns`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
use nix::sys::stat::Mode;

use crate::error::{Error, KernelFault, Result};
use crate::key::SysctlKey;
use crate::value::Value;

/// The default sysctl root.
pub const PROC_SYS: &str = "/proc/sys";

/// A handle on a sysctl tree.
#[derive(Debug)]
pub struct SysctlTree {
    root: PathBuf,
    dir: OwnedFd,
}

impl SysctlTree {
    /// Opens the tree rooted at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let dir = open(root, flags, Mode::empty()).map_err(|errno| {
            Error::environment(
                format!(
                    "cannot open sysctl root {}: {}",
                    root.display(),
                    errno.desc()
                ),
                Some("pass --root DIR for a fake tree, or run where /proc/sys is mounted"),
            )
        })?;
        Ok(Self {
            root: root.to_owned(),
            dir,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the key exists (and is reachable) in this tree.
    pub fn exists(&self, key: &SysctlKey) -> bool {
        self.open_key(key, OFlag::O_PATH).is_ok()
    }

    /// Reads a key's current value.
    pub fn read(&self, key: &SysctlKey) -> Result<Value> {
        self.read_text(key).map(|text| Value::from_text(&text))
    }

    /// Reads a key's raw text.
    pub fn read_text(&self, key: &SysctlKey) -> Result<String> {
        let fault = |e: Errno| kernel_error("read", key, KernelFault::from_io(&e.into()), None);
        let fd = self.open_key(key, OFlag::O_RDONLY).map_err(fault)?;
        let mut file = File::from(fd);
        // Small reads: the kernel allocates and zeroes a buffer of the size asked for.
        let mut buf = [0u8; 512];
        let mut text = Vec::new();
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(kernel_error("read", key, KernelFault::from_io(&e), None)),
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// Writes a value in one `write(2)`.
    pub fn write(&self, key: &SysctlKey, value: &Value) -> Result<()> {
        let text = value.to_kernel_text();
        let fault = |f: KernelFault| kernel_error("write", key, f, Some(value.to_string()));
        let fd = self
            .open_key(key, OFlag::O_WRONLY | OFlag::O_TRUNC)
            .map_err(|e| fault(KernelFault::from_io(&e.into())))?;
        let mut file = File::from(fd);
        match file.write(text.as_bytes()) {
            Ok(n) if n == text.len() => Ok(()),
            Ok(_) => Err(fault(KernelFault::InvalidValue)),
            Err(e) => Err(fault(KernelFault::from_io(&e))),
        }
    }

    fn open_key(&self, key: &SysctlKey, mode: OFlag) -> std::result::Result<OwnedFd, Errno> {
        let rel = key.rel_path();
        let how = OpenHow::new()
            .flags(mode | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        match openat2(&self.dir, &rel, how) {
            Err(Errno::ENOSYS) => {
                // Kernels before 5.6: components are validated (no `..`), O_NOFOLLOW guards the leaf.
                nix::fcntl::openat(
                    &self.dir,
                    &rel,
                    mode | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )
            }
            other => other,
        }
    }
}

fn kernel_error(
    op: &'static str,
    key: &SysctlKey,
    fault: KernelFault,
    value: Option<String>,
) -> Error {
    Error::Kernel {
        op,
        key: key.clone(),
        fault,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree() -> (tempfile::TempDir, SysctlTree) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
        std::fs::write(dir.path().join("net/ipv4/tcp_fin_timeout"), "60\n").unwrap();
        let tree = SysctlTree::open(dir.path()).unwrap();
        (dir, tree)
    }

    #[test]
    fn reads_and_writes_through_the_same_handle() {
        let (dir, tree) = fake_tree();
        let key = SysctlKey::parse("net.ipv4.tcp_fin_timeout").unwrap();
        assert_eq!(tree.read(&key).unwrap().to_string(), "60");
        tree.write(&key, &Value::from_text("5")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("net/ipv4/tcp_fin_timeout")).unwrap(),
            "5\n"
        );
    }

    #[test]
    fn missing_keys_and_symlinks_are_classified() {
        let (dir, tree) = fake_tree();
        let missing = SysctlKey::parse("net.ipv4.tcp_tw_recycle").unwrap();
        let err = tree.write(&missing, &Value::from_text("1")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Kernel {
                    fault: KernelFault::NotFound,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            !dir.path().join("net/ipv4/tcp_tw_recycle").exists(),
            "write must never create keys"
        );

        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("net/ipv4/evil")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("net/etc")).unwrap();
        for text in ["net.ipv4.evil", "net.etc.passwd"] {
            let key = SysctlKey::parse(text).unwrap();
            let err = tree.read(&key).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Kernel {
                        fault: KernelFault::Escapes,
                        ..
                    }
                ),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_root_is_an_environment_error() {
        let err = SysctlTree::open(Path::new("/nonexistent/sysctl")).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::ENVIRONMENT);
    }
}
