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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2};
use nix::sys::stat::Mode;

pub mod netns;
pub mod procnet;
pub mod sockets;

use crate::error::{Error, KernelFault, Result};
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;

/// Directory depth [`SysctlTree::walk`] descends to: a key has at most 128 components (256
/// bytes, one-byte components and separators).
const MAX_DEPTH: usize = 128;

/// The default sysctl root.
pub const PROC_SYS: &str = "/proc/sys";

/// What a directory entry of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (descend into it).
    Dir,
    /// A sysctl file.
    File,
    /// A symlink or anything else (never followed).
    Other,
}

/// One entry of a directory of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The file name (a key component).
    pub name: String,
    /// File, directory or other.
    pub kind: EntryKind,
    /// Permission bits (a sysctl without write bits cannot be set).
    pub mode: u32,
}

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

    /// What this handle changes, as a file-name-safe string: the root directory's device and
    /// inode, and the network namespace the process is in (`/proc/sys/net` follows it).
    pub fn identity(&self) -> Result<String> {
        let root = nix::sys::stat::fstat(&self.dir)
            .map_err(|e| Error::io("inspect", &self.root, e.into()))?;
        let netns = netns::current_inode().unwrap_or(0);
        Ok(format!("{:x}-{:x}-{netns:x}", root.st_dev, root.st_ino))
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
        read_fd(fd).map_err(|e| kernel_error("read", key, KernelFault::from_io(&e), None))
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

    /// Lists the directory `dir` (components under the root; empty = the root), sorted by name.
    /// Symlinks and other odd entries are reported as [`EntryKind::Other`], never followed.
    pub fn list(&self, dir: &[String]) -> Result<Vec<DirEntry>> {
        let rel = rel_dir(dir);
        let failed = |e: Errno| Error::io("list", self.root.join(&rel), std::io::Error::from(e));
        let fd = self
            .open_rel(&rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(failed)?;
        let (handle, names) = nix::dir::Dir::from_fd(fd).and_then(names).map_err(failed)?;
        let mut entries = Vec::new();
        for (name, _) in names {
            let stat = nix::sys::stat::fstatat(
                handle.as_fd(),
                name.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            let Ok(stat) = stat else { continue };
            entries.push(DirEntry {
                name,
                kind: kind_of_mode(stat.st_mode),
                mode: stat.st_mode & 0o7777,
            });
        }
        Ok(entries)
    }

    /// Reads every sysctl file under the directory `dir` (components; empty = the root),
    /// depth-first in name order, calling `visit` with each file's components and what was found.
    ///
    /// This is the all-keys path (`export`), shaped like the cheapest reader there is: each
    /// directory is opened once and its entries are opened relative to it by name (a name from
    /// the directory itself, with `O_NOFOLLOW`, so nothing can lead outside the tree), kinds come
    /// from the directory listing (`d_type`) instead of a stat per entry, and permission bits from
    /// `fstat` of the already open file. Files without write permission are not read (a profile
    /// cannot set them). A subdirectory that vanishes mid-walk is skipped.
    pub fn walk(&self, dir: &[String], visit: &mut dyn FnMut(&[String], Found)) -> Result<()> {
        let rel = rel_dir(dir);
        let fd = self
            .open_rel(&rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|e| Error::io("list", self.root.join(&rel), std::io::Error::from(e)))?;
        let mut path = dir.to_vec();
        self.walk_dir(fd, &mut path, visit)
    }

    fn walk_dir(
        &self,
        fd: OwnedFd,
        path: &mut Vec<String>,
        visit: &mut dyn FnMut(&[String], Found),
    ) -> Result<()> {
        let failed = |e: Errno| {
            let rel: PathBuf = path.iter().collect();
            Error::io("list", self.root.join(rel), std::io::Error::from(e))
        };
        let (handle, entries) = nix::dir::Dir::from_fd(fd).and_then(names).map_err(failed)?;
        for (name, kind) in entries {
            let kind = match kind {
                Some(kind) => kind,
                None => nix::sys::stat::fstatat(
                    handle.as_fd(),
                    name.as_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_or(EntryKind::Other, |st| kind_of_mode(st.st_mode)),
            };
            path.push(name);
            let name = path.last().map(String::as_str).unwrap_or_default();
            match kind {
                // Deeper than any key can be (keys are at most 256 bytes): not followed, so a
                // pathological fake tree cannot exhaust file descriptors or the stack.
                EntryKind::Dir if path.len() > MAX_DEPTH => {}
                EntryKind::Dir => {
                    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
                    if let Ok(sub) = openat(
                        handle.as_fd(),
                        name,
                        flags | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    ) {
                        self.walk_dir(sub, path, visit)?;
                    }
                }
                EntryKind::File => visit(path, read_entry(handle.as_fd(), name)),
                EntryKind::Other => {}
            }
            path.pop();
        }
        Ok(())
    }

    fn open_key(&self, key: &SysctlKey, mode: OFlag) -> std::result::Result<OwnedFd, Errno> {
        self.open_rel(&key.rel_path(), mode)
    }

    fn open_rel(&self, rel: &Path, mode: OFlag) -> std::result::Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(mode | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        match openat2(&self.dir, rel, how) {
            Err(Errno::ENOSYS) => {
                // Kernels before 5.6: components are validated (no `..`), O_NOFOLLOW guards the leaf.
                openat(
                    &self.dir,
                    rel,
                    mode | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )
            }
            other => other,
        }
    }
}

/// What [`SysctlTree::walk`] found in one sysctl file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The file's text (the file has write permission).
    Text(String),
    /// No write permission bits: left unread.
    ReadOnly,
    /// Opening or reading failed (write-only, refused).
    Unreadable(KernelFault),
}

/// The relative path of a directory given as components (`.` for the root).
fn rel_dir(dir: &[String]) -> PathBuf {
    if dir.is_empty() {
        PathBuf::from(".")
    } else {
        dir.iter().collect()
    }
}

/// Entry names of a directory with their kind when the listing tells it (`d_type`; `None` for
/// file systems that report `DT_UNKNOWN`).
type Names = Vec<(String, Option<EntryKind>)>;

/// The entries of a directory, sorted by name, without `.` and `..`; the handle is given back
/// for opening them relative to it.
fn names(mut dir: nix::dir::Dir) -> nix::Result<(nix::dir::Dir, Names)> {
    use nix::dir::Type;
    let mut entries = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy();
        if name == "." || name == ".." {
            continue;
        }
        let kind = entry.file_type().map(|t| match t {
            Type::Directory => EntryKind::Dir,
            Type::File => EntryKind::File,
            _ => EntryKind::Other,
        });
        entries.push((name.into_owned(), kind));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok((dir, entries))
}

fn kind_of_mode(mode: nix::libc::mode_t) -> EntryKind {
    match mode & nix::libc::S_IFMT {
        nix::libc::S_IFDIR => EntryKind::Dir,
        nix::libc::S_IFREG => EntryKind::File,
        _ => EntryKind::Other,
    }
}

/// Opens `name` in `dir` (never following a symlink), checks its write bits on the open file
/// and reads it when it has any.
fn read_entry(dir: BorrowedFd<'_>, name: &str) -> Found {
    // O_NONBLOCK: a FIFO swapped in after the listing must not hang the walk.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => return Found::Unreadable(KernelFault::from_io(&e.into())),
    };
    match nix::sys::stat::fstat(&fd) {
        Ok(st) if st.st_mode & nix::libc::S_IFMT != nix::libc::S_IFREG => {
            Found::Unreadable(KernelFault::Escapes)
        }
        Ok(st) if st.st_mode & 0o222 == 0 => Found::ReadOnly,
        Ok(_) => match read_fd(fd) {
            Ok(text) => Found::Text(text),
            Err(e) => Found::Unreadable(KernelFault::from_io(&e)),
        },
        Err(e) => Found::Unreadable(KernelFault::from_io(&e.into())),
    }
}

/// Reads an open sysctl file to its end, in small reads: the kernel allocates and zeroes a
/// buffer of the size asked for. A short read is the end: a sysctl handler returns the whole
/// value (or a full buffer) per read, and a regular file in a fake tree reads short only at its
/// end. This saves the read that would return 0, one syscall per key.
fn read_fd(fd: OwnedFd) -> std::io::Result<String> {
    let mut file = File::from(fd);
    let mut buf = [0u8; 512];
    let mut text = Vec::new();
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if n < buf.len() => {
                text.extend_from_slice(&buf[..n]);
                break;
            }
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(match String::from_utf8(text) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn kernel_error(
    op: &'static str,
    key: &SysctlKey,
    fault: KernelFault,
    value: Option<String>,
) -> Error {
    Error::Kernel {
        op,
        key: key.to_string(),
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
    fn listing_reports_kinds_and_modes_without_following_symlinks() {
        let (dir, tree) = fake_tree();
        std::os::unix::fs::symlink("/etc", dir.path().join("net/etc")).unwrap();
        let net = tree.list(&["net".to_owned()]).unwrap();
        let kinds: Vec<(&str, EntryKind)> = net.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(kinds, [("etc", EntryKind::Other), ("ipv4", EntryKind::Dir)]);
        let ipv4 = tree.list(&["net".to_owned(), "ipv4".to_owned()]).unwrap();
        assert_eq!(ipv4[0].name, "tcp_fin_timeout");
        assert_eq!(ipv4[0].kind, EntryKind::File);
        assert_ne!(ipv4[0].mode & 0o200, 0);
        assert_eq!(tree.list(&[]).unwrap()[0].name, "net");
        assert!(tree.list(&["net".to_owned(), "etc".to_owned()]).is_err());
    }

    #[test]
    fn walking_reads_settable_files_in_order_and_follows_no_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, tree) = fake_tree();
        let ro = dir.path().join("net/ipv4/tcp_ro");
        std::fs::write(&ro, "1\n").unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::create_dir_all(dir.path().join("vm")).unwrap();
        std::fs::write(dir.path().join("vm/swappiness"), "60\n").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("net/etc")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("vm/host")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("vm/fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        let mut seen = Vec::new();
        tree.walk(&[], &mut |path, found| seen.push((path.join("/"), found)))
            .unwrap();
        assert_eq!(
            seen,
            [
                (
                    "net/ipv4/tcp_fin_timeout".to_owned(),
                    Found::Text("60\n".into())
                ),
                ("net/ipv4/tcp_ro".to_owned(), Found::ReadOnly),
                ("vm/swappiness".to_owned(), Found::Text("60\n".into())),
            ]
        );
        let mut under = Vec::new();
        tree.walk(&["vm".to_owned()], &mut |path, _| {
            under.push(path.join("/"))
        })
        .unwrap();
        assert_eq!(under, ["vm/swappiness"]);
        assert!(
            tree.walk(&["net".to_owned(), "etc".to_owned()], &mut |_, _| {})
                .is_err()
        );

        // Deeper than any key: not descended into.
        let deep: PathBuf = std::iter::repeat_n("d", MAX_DEPTH + 2).collect();
        std::fs::create_dir_all(dir.path().join("net").join(&deep)).unwrap();
        std::fs::write(dir.path().join("net").join(&deep).join("k"), "1\n").unwrap();
        let mut count = 0;
        tree.walk(&[], &mut |_, _| count += 1).unwrap();
        assert_eq!(count, 3);
    }

    #[test]
    fn a_missing_root_is_an_environment_error() {
        let err = SysctlTree::open(Path::new("/nonexistent/sysctl")).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::ENVIRONMENT);
    }
}
