//! What boot does: which sysctl.d files systemd-sysctl reads, in which order, and which of them
//! would override a profile's keys after sysprof's own file.
//!
//! systemd-sysctl reads `*.conf` from /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d and
//! /usr/lib/sysctl.d; a file name found in an earlier directory masks the same name in later ones;
//! the files are applied sorted by name across directories (procps `sysctl --system` reads
//! /etc/sysctl.conf last; systemd reaches it through the 99-sysctl.conf link, which sorts after
//! 99-sysprof.conf). The directory list is data ([`BootFiles`]), so tests use a tempdir. This
//! module reads those files and never writes anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::adopt::import::{Options, Origin};
use crate::error::{Error, Result};
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;

/// The sysctl.d directories in systemd's precedence order, relative to `/`.
pub const STANDARD_DIRS: &[&str] = &[
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
];
/// procps' classic file, read last by `sysctl --system`.
pub const SYSCTL_CONF: &str = "etc/sysctl.conf";

/// The places boot reads sysctl settings from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// sysctl.d directories, highest precedence first.
    pub dirs: Vec<PathBuf>,
    /// A file read after all of them (/etc/sysctl.conf), if any.
    pub conf: Option<PathBuf>,
}

impl BootFiles {
    /// The standard locations under `root` (`/` on a real host).
    pub fn under(root: &Path) -> Self {
        Self {
            dirs: STANDARD_DIRS.iter().map(|d| root.join(d)).collect(),
            conf: Some(root.join(SYSCTL_CONF)),
        }
    }

    /// The files in the order they are applied: `*.conf` sorted by file name, a name in an
    /// earlier directory masking later ones, then the trailing file unless already read.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in &self.dirs {
            for name in conf_names(dir)? {
                by_name
                    .entry(name.clone())
                    .or_insert_with(|| dir.join(name));
            }
        }
        let mut files: Vec<PathBuf> = by_name.into_values().collect();
        if let Some(conf) = self.conf.as_ref().filter(|c| c.is_file()) {
            let canonical = std::fs::canonicalize(conf).ok();
            let seen = files
                .iter()
                .any(|f| std::fs::canonicalize(f).ok() == canonical);
            if !seen {
                files.push(conf.clone());
            }
        }
        Ok(files)
    }
}

/// `*.conf` names in `dir` (absent directory = none).
fn conf_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".conf") && !entry.path().is_dir() {
            names.push(name);
        }
    }
    Ok(names)
}

/// A line that boot applies after sysprof's file and that changes one of its keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Override {
    /// The key.
    pub key: SysctlKey,
    /// What sysprof's file sets.
    pub ours: Value,
    /// What boot ends up with: `None` when the line excludes the key (`-key`).
    pub theirs: Option<Value>,
    /// The overriding line.
    pub at: Origin,
}

/// The lines of files applied after `own_name` that would change `settings` at boot.
///
/// A file sorting after `own_name` (and the trailing sysctl.conf) re-assigns a key with a
/// different value, or excludes it. Globs never override an explicit key (systemd-sysctl and
/// procps skip keys set explicitly), so only literal keys are considered.
pub fn overrides<'a>(
    settings: impl IntoIterator<Item = (&'a SysctlKey, &'a Value)>,
    boot: &BootFiles,
    own_name: &str,
) -> Result<Vec<Override>> {
    let files = boot.files()?;
    let later: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let in_dirs = boot.dirs.iter().any(|d| f.parent() == Some(d.as_path()));
            !in_dirs || name > own_name
        })
        .collect();
    let options = Options::read(&later)?;
    let mut found = Vec::new();
    for (key, ours) in settings {
        let Some(entry) = options.explicit(key) else {
            continue;
        };
        let theirs = entry.value.as_deref().map(Value::from_text);
        if theirs.as_ref().is_some_and(|t| t.same_as(ours)) {
            continue;
        }
        found.push(Override {
            key: key.clone(),
            ours: ours.clone(),
            theirs,
            at: entry.at.clone(),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn names(root: &Path, files: &[PathBuf]) -> Vec<String> {
        files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn files_sort_by_name_across_dirs_and_etc_masks_usr() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "usr/lib/sysctl.d/50-default.conf", "a.b = 1\n");
        write(root, "usr/lib/sysctl.d/10-net.conf", "a.b = 2\n");
        write(root, "etc/sysctl.d/50-default.conf", "a.b = 3\n");
        write(root, "run/sysctl.d/30-run.conf", "a.b = 4\n");
        write(root, "usr/local/lib/sysctl.d/20-local.conf", "a.b = 5\n");
        write(root, "etc/sysctl.d/README", "not a conf\n");
        write(root, "etc/sysctl.conf", "a.b = 6\n");
        let files = BootFiles::under(root).files().unwrap();
        assert_eq!(
            names(root, &files),
            [
                "usr/lib/sysctl.d/10-net.conf",
                "usr/local/lib/sysctl.d/20-local.conf",
                "run/sysctl.d/30-run.conf",
                "etc/sysctl.d/50-default.conf",
                "etc/sysctl.conf",
            ]
        );
        std::os::unix::fs::symlink(
            root.join("etc/sysctl.conf"),
            root.join("etc/sysctl.d/99-sysctl.conf"),
        )
        .unwrap();
        let files = BootFiles::under(root).files().unwrap();
        assert_eq!(
            names(root, &files).last().unwrap(),
            "etc/sysctl.d/99-sysctl.conf"
        );
        assert_eq!(files.len(), 5, "sysctl.conf is read once");
    }

    #[test]
    fn later_files_override_and_earlier_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "etc/sysctl.d/10-early.conf",
            "net.core.somaxconn = 128\n",
        );
        write(
            root,
            "etc/sysctl.d/99-sysprof.conf",
            "net.core.somaxconn = 8192\n",
        );
        write(
            root,
            "usr/lib/sysctl.d/99-zz.conf",
            "# x\nnet.ipv4.tcp_fin_timeout = 60\nnet.ipv4.tcp_keepalive_time = 600\nnet.ipv4.conf.*.rp_filter = 1\n",
        );
        write(root, "etc/sysctl.conf", "-net.core.somaxconn\n");
        let key = |k: &str| SysctlKey::parse(k).unwrap();
        let settings = [
            (key("net.core.somaxconn"), Value::from_text("8192")),
            (key("net.ipv4.tcp_fin_timeout"), Value::from_text("30")),
            (key("net.ipv4.tcp_keepalive_time"), Value::from_text("600")),
            (key("net.ipv4.conf.all.rp_filter"), Value::from_text("2")),
        ];
        let found = overrides(
            settings.iter().map(|(k, v)| (k, v)),
            &BootFiles::under(root),
            "99-sysprof.conf",
        )
        .unwrap();
        let shown: Vec<String> = found
            .iter()
            .map(|o| {
                let theirs = o
                    .theirs
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or("excluded".into());
                format!(
                    "{} {theirs} {}",
                    o.key,
                    o.at.to_string().replace(&root.display().to_string(), "")
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "net.core.somaxconn excluded /etc/sysctl.conf:1",
                "net.ipv4.tcp_fin_timeout 60 /usr/lib/sysctl.d/99-zz.conf:2",
            ]
        );
    }
}
