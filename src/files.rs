//! Reading the files sysprof is given or keeps: regular files only, bounded, never hanging.
//!
//! A FIFO, a device or a directory where a profile, an `extends` target, a sysctl.d file, a
//! record or the history is expected must be an error, not a process blocked forever on
//! `open(2)` or `read(2)`: files are opened `O_NONBLOCK` and checked with `fstat` before a byte
//! is read. Files in the state dir are also opened `O_NOFOLLOW`, and the caller can require
//! that the file belongs to it and that nobody else may write it.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file does not exist.
    Missing,
    /// It is a symlink and symlinks were refused.
    Symlink,
    /// It is not a regular file (FIFO, device, socket, directory).
    NotRegular(&'static str),
    /// It is larger than allowed.
    TooLarge(u64),
    /// It belongs to another user, or others may write it.
    Untrusted(String),
    /// Any other I/O error.
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("no such file"),
            Self::Symlink => f.write_str("it is a symlink; refusing to follow it"),
            Self::NotRegular(kind) => write!(f, "it is a {kind}, not a regular file"),
            Self::TooLarge(max) => write!(f, "it is larger than {max} bytes"),
            Self::Untrusted(why) => f.write_str(why),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

/// How a file is opened.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Largest size read.
    pub max_bytes: u64,
    /// Refuse a symlink at the last component.
    pub no_follow: bool,
    /// Require this owner, and no group or other write permission.
    pub owner: Option<u32>,
}

impl Policy {
    /// Input the operator names (profiles, sysctl.d files): symlinks followed, any owner.
    pub const fn input(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            no_follow: false,
            owner: None,
        }
    }

    /// State sysprof keeps: no symlink, owned by `uid`, writable by nobody else.
    pub const fn state(max_bytes: u64, uid: u32) -> Self {
        Self {
            max_bytes,
            no_follow: true,
            owner: Some(uid),
        }
    }
}

/// Reads `path` under `policy`.
pub fn read(path: &Path, policy: Policy) -> Result<Vec<u8>, ReadError> {
    let (file, meta) = open_checked(path, policy)?;
    // Room for the whole file and one byte more: one read(2) for the content and one that
    // finds the end, where an empty buffer grows from 32 bytes read by read.
    let room = meta.len().min(policy.max_bytes) as usize + 1;
    let mut bytes = Vec::with_capacity(room);
    file.take(policy.max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > policy.max_bytes {
        return Err(ReadError::TooLarge(policy.max_bytes));
    }
    Ok(bytes)
}

/// Opens `path` for reading under `policy`: never blocks, and only ever on a regular file.
pub fn open(path: &Path, policy: Policy) -> Result<File, ReadError> {
    open_checked(path, policy).map(|(file, _)| file)
}

/// [`open`], with the metadata it checked.
fn open_checked(path: &Path, policy: Policy) -> Result<(File, std::fs::Metadata), ReadError> {
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC | nix::libc::O_NOCTTY;
    if policy.no_follow {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ENOENT) => ReadError::Missing,
            Some(nix::libc::ELOOP) if policy.no_follow => ReadError::Symlink,
            _ => ReadError::Io(e),
        })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind(&meta)));
    }
    if let Some(uid) = policy.owner {
        check_trusted(&meta, uid).map_err(ReadError::Untrusted)?;
    }
    Ok((file, meta))
}

/// A file or directory sysprof relies on must belong to `uid` (or root) and be writable by
/// nobody else; otherwise another user could plant what sysprof later acts on.
pub fn check_trusted(meta: &std::fs::Metadata, uid: u32) -> Result<(), String> {
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(format!(
            "it is owned by uid {}, not by uid {uid} or root",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "its mode {:o} lets other users write it",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Checks every directory on the resolved path of `dir` (symlinks followed) the way
/// [`check_trusted`] checks a file, except that a world-writable directory with the sticky bit
/// (`/tmp`) is allowed: there nobody can rename or remove another user's entries. `dir` need not
/// exist yet; its existing ancestors are checked.
pub fn check_trusted_path(dir: &Path, uid: u32) -> Result<(), String> {
    let absolute =
        std::path::absolute(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    let existing = absolute
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let resolved = existing
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", existing.display()))?;
    for component in resolved.ancestors() {
        let meta =
            std::fs::metadata(component).map_err(|e| format!("{}: {e}", component.display()))?;
        let sticky = meta.mode() & 0o1000 != 0;
        let owned = meta.uid() == uid || meta.uid() == 0;
        if !owned || (meta.mode() & 0o022 != 0 && !sticky) {
            let why = check_trusted(&meta, uid).err().unwrap_or_default();
            return Err(format!(
                "{} (on the path to {}): {why}",
                component.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

/// What kind of file `meta` describes, in words.
pub fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    match () {
        _ if t.is_dir() => "directory",
        _ if t.is_fifo() => "FIFO",
        _ if t.is_char_device() => "character device",
        _ if t.is_block_device() => "block device",
        _ if t.is_socket() => "socket",
        _ if t.is_symlink() => "symlink",
        _ => "special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let input = Policy::input(1024);
        assert!(matches!(
            read(&fifo, input),
            Err(ReadError::NotRegular("FIFO"))
        ));
        assert!(matches!(
            read(Path::new("/dev/zero"), input),
            Err(ReadError::NotRegular("character device"))
        ));
        assert!(matches!(
            read(dir.path(), input),
            Err(ReadError::NotRegular("directory"))
        ));
        assert!(matches!(
            read(&dir.path().join("nope"), input),
            Err(ReadError::Missing)
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(matches!(read(&big, input), Err(ReadError::TooLarge(1024))));
    }

    #[test]
    fn paths_through_foreign_or_writable_directories_are_untrusted() {
        use std::os::unix::fs::PermissionsExt;
        let me = nix::unistd::geteuid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_path(&open.join("state"), me).unwrap_err();
        assert!(err.contains("lets other users write it"), "{err}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(
            check_trusted_path(&open.join("state"), me),
            Ok(()),
            "sticky like /tmp"
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert_eq!(
            check_trusted_path(&link.join("state"), me),
            Ok(()),
            "a link to a trusted dir"
        );
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            check_trusted_path(&link.join("state"), me).is_err(),
            "followed, then checked"
        );
    }

    #[test]
    fn state_files_refuse_symlinks_and_writable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let me = nix::unistd::geteuid().as_raw();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&file, Policy::state(10, me)).unwrap(), b"x");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = read(&file, Policy::state(10, me)).unwrap_err().to_string();
        assert!(err.contains("lets other users write it"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(
            read(&link, Policy::state(10, me)),
            Err(ReadError::Symlink)
        ));
    }
}
