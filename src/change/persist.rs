//! The persisted sysctl.d file that makes boot reproduce an applied profile.
//!
//! The file is plain sysctl.d syntax (`key = value`, `-key = value` for optional keys) that both
//! systemd-sysctl and `sysctl -p` accept. It is written by temp file + rename in the same
//! directory and never through a symlink. This module renders and writes; when to write is
//! decided by `apply`.

use std::fmt::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::change::plan::{Plan, Status};
use crate::change::store;
use crate::error::{Error, Result};

/// Default directory of the persisted file.
pub const DEFAULT_SYSCTL_D: &str = "/etc/sysctl.d";
/// The file sysprof owns there; `99-` so it sorts after distribution files.
pub const FILE_NAME: &str = "99-sysprof.conf";

/// The persisted file's path in `dir`.
pub fn file_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Renders the profile's keys as a sysctl.d file. No timestamps: re-applying is a no-op.
pub fn render(plan: &Plan, profile_path: &Path) -> String {
    let mut text = String::new();
    writeln!(
        text,
        "# Written by sysprof: edits are overwritten by the next `sysprof apply`."
    )
    .ok();
    writeln!(
        text,
        "# profile: {} ({})",
        plan.profile,
        profile_path.display()
    )
    .ok();
    writeln!(text, "# sha256: {}", plan.fingerprint).ok();
    // A pattern key is written once, as the pattern: boot then sets the matching keys it
    // finds (a key the profile names itself wins, in systemd-sysctl as here).
    let mut patterns = std::collections::HashSet::new();
    for change in plan.persisted() {
        let optional = if change.status == Status::Skipped {
            "-"
        } else {
            ""
        };
        match &change.pattern {
            Some(p) if !patterns.insert(p.as_str()) => {}
            Some(p) => writeln!(text, "{p} = {}", change.desired).unwrap_or_default(),
            None => {
                writeln!(text, "{optional}{} = {}", change.key, change.desired).unwrap_or_default()
            }
        }
    }
    text
}

/// The file's current content, `None` when absent. Refuses a symlink, a file that is not
/// regular, or one that `uid` (or root) does not own or others may write.
pub fn read(path: &Path, uid: u32) -> Result<Option<String>> {
    let bytes = store::read_trusted(path, uid)?;
    bytes
        .map(|b| {
            String::from_utf8(b)
                .map_err(|_| Error::state(format!("{} is not UTF-8 text", path.display()), None))
        })
        .transpose()
}

/// What a change will do to the file, prepared before the first kernel write: the new content
/// written and flushed beside it (the directory created 0755 first if missing, as packages do),
/// or for a removal, the directory checked for write permission.
pub fn stage(path: &Path, content: Option<&str>, uid: u32) -> Result<Option<store::Staged>> {
    let (dir, name) = split(path)?;
    let refuse = |why: String| {
        Error::environment(
            format!(
                "cannot write the persisted file {}: {why}; nothing was changed",
                path.display()
            ),
            Some("fix the directory (or pass --sysctl-d DIR, or --no-persist)"),
        )
    };
    crate::files::check_trusted_path(dir, uid).map_err(refuse)?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| refuse(format!("cannot create {}: {e}", dir.display())))?;
    }
    match content {
        Some(text) => store::stage(dir, name, text.as_bytes(), 0o644)
            .map(Some)
            .map_err(|e| refuse(e.to_string())),
        None => store::check_writable_dir(dir)
            .map(|()| None)
            .map_err(|e| refuse(e.to_string())),
    }
}

/// Replaces the file with `content`, or removes it for `None`.
pub fn write(path: &Path, content: Option<&str>) -> Result<()> {
    let (dir, name) = split(path)?;
    match content {
        Some(text) => store::write_atomic_mode(dir, name, text.as_bytes(), 0o644),
        None => store::remove_durably(dir, name),
    }
}

fn split(path: &Path) -> Result<(&Path, &str)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::environment(format!("{} is not a file path", path.display()), None)
    })?;
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_remove_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_in(dir.path());
        write(&path, Some("a.b = 1\n")).unwrap();
        assert_eq!(
            read(&path, nix::unistd::geteuid().as_raw())
                .unwrap()
                .as_deref(),
            Some("a.b = 1\n")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        write(&path, None).unwrap();
        assert_eq!(read(&path, nix::unistd::geteuid().as_raw()).unwrap(), None);

        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(
            read(&path, nix::unistd::geteuid().as_raw())
                .unwrap_err()
                .to_string()
                .contains("symlink")
        );
        write(&path, Some("x.y = 2\n")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "keep",
            "rename replaces the link, never its target"
        );
    }
}
