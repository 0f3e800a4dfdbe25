//! Boot-precedence warnings for `diff` and `apply`: which sysctl.d lines would override the
//! profile's keys after sysprof's own file at the next boot.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anstyle::{AnsiColor, Style};

use super::{Io, io_err};
use crate::adopt::boot::{self, BootFiles, Override};
use crate::change::persist::FILE_NAME;
use crate::cli::Global;
use crate::error::Result;
use crate::kernel::PROC_SYS;
use crate::profile::Profile;

/// The boot files to check: under `--boot-root` when given; else `/` for the host's own
/// /proc/sys only (boot never applies sysctl.d to a fake tree or a child namespace).
pub fn boot_files(g: &Global) -> Option<BootFiles> {
    match &g.boot_root {
        Some(root) => Some(BootFiles::under(root)),
        None if g.netns.is_none() && g.root == Path::new(PROC_SYS) => {
            Some(BootFiles::under(&PathBuf::from("/")))
        }
        None => None,
    }
}

/// Finds the overrides of `profile`'s keys and, in human mode, warns on stderr. A boot file
/// that cannot be read is itself a warning, never a failure of the command.
pub fn check(g: &Global, profile: &Profile, io: &mut Io) -> Result<Vec<Override>> {
    let Some(files) = boot_files(g) else {
        return Ok(Vec::new());
    };
    let settings = profile.settings.iter().map(|(k, s)| (k, &s.value));
    let found = match boot::overrides(settings, &files, FILE_NAME) {
        Ok(found) => found,
        Err(e) => {
            if !io.json() {
                let head = paint(AnsiColor::Yellow.on_default().bold(), "warning[boot-files]");
                writeln!(
                    io.err,
                    "{head}: cannot check what boot applies after {FILE_NAME}: {e}"
                )
                .map_err(io_err)?;
            }
            return Ok(Vec::new());
        }
    };
    if !io.json() {
        for o in &found {
            warn(&mut *io.err, o).map_err(io_err)?;
        }
    }
    Ok(found)
}

fn warn(out: &mut dyn std::io::Write, o: &Override) -> std::io::Result<()> {
    let head = paint(
        AnsiColor::Yellow.on_default().bold(),
        "warning[boot-override]",
    );
    let what = match &o.theirs {
        Some(v) => format!("sets {} = {v}", o.key),
        None => format!("excludes {}", o.key),
    };
    writeln!(
        out,
        "{head}: at boot {} {what} after {FILE_NAME}, overriding this profile's {}",
        o.at, o.ours
    )?;
    writeln!(
        out,
        "  = help: remove or change that line, or move it to a file that sorts before {FILE_NAME}"
    )
}

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}
