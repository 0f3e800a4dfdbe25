//! Entering a network namespace before anything touches /proc/sys.
//!
//! `/proc/sys/net` shows the network namespace of the task that looks, so after `setns` every
//! read and write of a `net.*` key hits that namespace. This must run while the process is still
//! single-threaded, before the sysctl root is opened.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};

use crate::error::{Error, Result};

/// Where `ip netns add NAME` pins namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Resolves `NAME` (under /run/netns) or a path (`/proc/PID/ns/net`, a bind mount).
pub fn resolve(spec: &str) -> PathBuf {
    if spec.contains('/') {
        PathBuf::from(spec)
    } else {
        PathBuf::from(NETNS_RUN_DIR).join(spec)
    }
}

/// The inode of the network namespace the calling process is in (it names the namespace).
pub fn current_inode() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/net").ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    })
}

/// The inode of the network namespace at `path` (`/proc/PID/ns/net`, `/run/netns/NAME`).
pub fn inode_of(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The name under /run/netns of the namespace with `inode`, if `ip netns` pinned it.
pub fn name_of(inode: u64) -> Option<String> {
    let entries = std::fs::read_dir(NETNS_RUN_DIR).ok()?;
    entries
        .flatten()
        .find(|e| inode_of(&e.path()) == Some(inode))
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

/// Moves the calling thread into the network namespace named by `spec`.
pub fn enter(spec: &str) -> Result<()> {
    let path = resolve(spec);
    let file = File::open(&path).map_err(|e| {
        Error::environment(
            format!("cannot open network namespace {spec:?} ({}): {e}", path.display()),
            Some("list namespaces with `ip netns list`; pass a name or a path such as /proc/PID/ns/net"),
        )
    })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
        Error::environment(
            format!("cannot enter network namespace {spec:?}: {}", errno.desc()),
            Some("entering a namespace needs CAP_SYS_ADMIN (run as root); the path must be a network namespace"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_under_run_netns_and_paths_stay() {
        assert_eq!(resolve("blue"), PathBuf::from("/run/netns/blue"));
        assert_eq!(resolve("/proc/1/ns/net"), PathBuf::from("/proc/1/ns/net"));
    }

    #[test]
    fn a_missing_namespace_is_an_environment_error() {
        let err = enter("sysprof-no-such-namespace").unwrap_err();
        assert!(err.to_string().contains("sysprof-no-such-namespace"));
        assert_eq!(err.exit_code(), crate::error::exit::ENVIRONMENT);
    }
}
