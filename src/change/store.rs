//! The state store: snapshots, history, the write-ahead journal and the lock.
//!
//! Layout of the state dir (0700, files 0600):
//!
//! ```text
//! lock                  flock(2) target; holds the pid of the process changing the host
//! records/<sha256>.json one per change: old and new value of every key, persisted-file
//!                       before/after, profile, time, user, kernel. Named by the sha256 of its
//!                       bytes and verified on every read.
//! history.jsonl         the committed record ids, one JSON line each, oldest first
//! journal.json          present only while a change is in flight: record id + phase
//! ```
//!
//! Records and the journal are written to a temp file in the same directory, fsync'd, renamed,
//! and the directory fsync'd, so a crash leaves either the old or the new file. The history is
//! append-only: a commit writes one line and `fdatasync`s it (one flush, whatever the history's
//! length); a last line without its newline is an append a crash cut short, never committed, so
//! it is ignored and overwritten by the next commit. The record and the journal are durable
//! before the first kernel write; the journal goes only after the history names the record (its
//! removal is not fsync'd: a journal whose record is in the history is completed by the next
//! `recover`). A `history.json` of earlier builds is read, and replaced by `history.jsonl` at the
//! next commit. This module stores and verifies; deciding what to undo is `rollback`'s job.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::change::record::{Record, SHORT_ID};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::profile::hex;

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sysprof";
/// The phase of an in-flight change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Record durable; kernel writes may have started. The only phase this build writes.
    Intent,
    /// Every kernel write done and read back, no persist step to follow (written by earlier
    /// builds; recovery still completes such a journal).
    Written,
    /// Persisted file renamed into place (older builds; recovery still completes it).
    Persisted,
}

/// The journal: which record is in flight and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Record id.
    pub id: String,
    /// Phase reached.
    pub phase: Phase,
}

/// One history line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// 1-based position.
    pub seq: u64,
    /// Record id.
    pub id: String,
}

/// The history file.
const HISTORY: &str = "history.jsonl";
/// The whole-file history of earlier builds.
const LEGACY_HISTORY: &str = "history.json";

#[derive(Debug, Default, Deserialize)]
struct LegacyHistory {
    entries: Vec<HistoryEntry>,
}

/// The error for a history file that does not parse (either format).
fn corrupt_history(path: &Path, cause: impl std::fmt::Display) -> Error {
    Error::state(
        format!("history {} is corrupt: {cause}", path.display()),
        Some("restore it from backup; records/ still holds every snapshot"),
    )
}

/// One history line, newline-terminated.
fn history_line(entry: &HistoryEntry) -> Vec<u8> {
    let mut line = serde_json::to_vec(entry).expect("history entries serialise");
    line.push(b'\n');
    line
}

/// The entries of complete lines and the length of those lines; a last line without its
/// newline (an append cut short) is left out.
fn parse_history(bytes: &[u8]) -> std::result::Result<(Vec<HistoryEntry>, usize), String> {
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let entries = bytes[..complete]
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect::<std::result::Result<_, _>>()?;
    Ok((entries, complete))
}

/// Proof that the caller holds the state lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _lock: Flock<File>,
    /// The target's lock (the sysctl tree and network namespace), taken first, and its path.
    _target: Option<(Flock<File>, PathBuf)>,
}

impl Drop for StoreLock {
    /// Clears the pids before unlocking: the files name the holder only while it holds them.
    /// The target's lock file is removed while still held (one per namespace would pile up
    /// under /run otherwise); a waiter that locked the removed file sees it is gone and retries.
    fn drop(&mut self) {
        let _ = self._lock.set_len(0);
        if let Some((target, path)) = &self._target {
            let _ = target.set_len(0);
            if same_file(target, path) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// Whether `path` still names the open file `file` (not removed or replaced since it was opened).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Where target locks live: one file per sysctl tree and network namespace, so two state dirs
/// changing the same kernel take turns.
pub const TARGET_LOCK_DIR: &str = "/run/lock/sysprof";

/// Takes an exclusive flock on `path` (created 0600), retrying until `deadline`, and writes
/// `pid` into it. No fsync: the pid only names the holder to a waiting process, and a crash
/// releases the flock anyway.
fn flock_pid(path: &Path, deadline: Instant, pid: u32) -> Result<Flock<File>> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc_nofollow())
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            // The holder before us removed the file on release: lock the one there now.
            Ok(lock) if !same_file(&lock, path) => continue,
            Ok(mut lock) => {
                lock.set_len(0)
                    .and_then(|_| writeln!(lock, "{pid}"))
                    .map_err(|e| Error::io("write", path, e))?;
                return Ok(lock);
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let holder = fs::read_to_string(path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                return Err(Error::Locked {
                    path: path.to_owned(),
                    holder,
                });
            }
            Err((_, errno)) => return Err(Error::io("lock", path, errno.into())),
        }
    }
}

/// The state directory.
#[derive(Clone)]
pub struct Store {
    dir: PathBuf,
    /// Whose store it is (euid) and who locks it (pid).
    env: &'static dyn Env,
    /// Whether the state dir passed [`Store::verify`] (checked once).
    trusted: std::sync::OnceLock<std::result::Result<(), String>>,
    /// The kernel target this store changes, for the target lock.
    target: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// A store at `dir` for the process `env` describes; nothing is created until something
    /// is written.
    pub fn new(dir: impl Into<PathBuf>, env: &'static dyn Env) -> Self {
        Self {
            dir: dir.into(),
            env,
            trusted: std::sync::OnceLock::new(),
            target: None,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The user the store belongs to (files it reads must be theirs or root's).
    pub fn euid(&self) -> u32 {
        self.env.euid()
    }

    /// Checks, creating nothing, that the state dir can be trusted (see [`check_private_dir`]
    /// and `files::check_trusted_path`); an absent state dir is fine. Checked once per store.
    pub fn verify(&self) -> Result<()> {
        let verdict = self
            .trusted
            .get_or_init(|| self.inspect().map_err(|e| e.to_string()));
        verdict.clone().map_err(|message| {
            Error::state(
                message,
                Some("the state dir and the directories above it must belong to root (or you) and be writable by nobody else: fix them with chown/chmod, or pick another --state-dir"),
            )
        })
    }

    fn inspect(&self) -> std::result::Result<(), String> {
        let euid = self.env.euid();
        let parent = self
            .dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::files::check_trusted_path(parent, euid)?;
        for dir in [self.dir.clone(), self.dir.join("records")] {
            match fs::symlink_metadata(&dir) {
                Ok(meta) => check_private_dir(&dir, &meta, euid)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
            }
        }
        Ok(())
    }

    /// Creates the directory layout (0700) after [`Store::verify`].
    pub fn ensure(&self) -> Result<()> {
        self.verify()?;
        for dir in [self.dir.clone(), self.dir.join("records")] {
            match fs::symlink_metadata(&dir) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&dir)
                        .map_err(|e| Error::io("create", &dir, e))?;
                }
                Err(e) => return Err(Error::io("inspect", &dir, e)),
            }
        }
        Ok(())
    }

    /// Takes the lock, waiting up to `timeout`: first the target's (one sysctl tree in one
    /// network namespace, whatever the state dir), then the state dir's.
    pub fn lock(&self, timeout: Duration) -> Result<StoreLock> {
        self.ensure()?;
        let deadline = Instant::now() + timeout;
        let target = match self.target_lock_path() {
            Some(path) => Some((flock_pid(&path, deadline, self.env.pid())?, path)),
            None => None,
        };
        let state = flock_pid(&self.dir.join("lock"), deadline, self.env.pid())?;
        Ok(StoreLock {
            _lock: state,
            _target: target,
        })
    }

    /// This store's target lock file under [`TARGET_LOCK_DIR`] (created 0755), or `None` when
    /// there is no target or the directory cannot be had (an unprivileged run on a fake tree).
    fn target_lock_path(&self) -> Option<PathBuf> {
        self.target_file("lock")
    }

    /// `TARGET_LOCK_DIR/<target>.<suffix>`, the directory created and checked; `None` without a
    /// target or a usable directory.
    fn target_file(&self, suffix: &str) -> Option<PathBuf> {
        let target = self.target.as_deref()?;
        let dir = Path::new(TARGET_LOCK_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .ok()?;
        crate::files::check_trusted_path(dir, self.env.euid()).ok()?;
        Some(dir.join(format!("{target}.{suffix}")))
    }

    /// Marks this store's target as holding a change that awaits confirmation, so that a store
    /// in another state dir refuses to change the same kernel meanwhile (cleared at reboot with
    /// /run, as the unpersisted change is).
    pub fn mark_target_pending(&self) -> Result<()> {
        let Some(path) = self.target_file("pending") else {
            return Ok(());
        };
        let dir = std::path::absolute(&self.dir).map_err(|e| Error::io("resolve", &self.dir, e))?;
        let name = path.file_name().expect("a file name").to_string_lossy();
        write_atomic(
            Path::new(TARGET_LOCK_DIR),
            &name,
            dir.as_os_str().as_encoded_bytes(),
        )
    }

    /// Removes this store's pending mark from its target (a mark of another store is left).
    pub fn clear_target_pending(&self) -> Result<()> {
        let Some(path) = self.target_file("pending") else {
            return Ok(());
        };
        let ours = std::path::absolute(&self.dir).ok();
        if self
            .target_pending_mark()
            .is_some_and(|named| Some(named) == ours)
        {
            let name = path.file_name().expect("a file name").to_string_lossy();
            remove_durably(Path::new(TARGET_LOCK_DIR), &name)?;
        }
        Ok(())
    }

    /// The state dir the target's pending mark names, if there is a mark (whether that dir's
    /// change is still pending is for the caller to judge).
    pub fn target_pending_mark(&self) -> Option<PathBuf> {
        let path = self.target_file("pending")?;
        Some(PathBuf::from(fs::read_to_string(path).ok()?))
    }

    /// A small file of the state dir, read under the state trust rules (`None` when absent).
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.verify()?;
        read_trusted(&self.dir.join(name), self.env.euid())
    }

    /// Writes a small file of the state dir (0600, atomically), creating the dir if needed.
    pub fn write_new_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.ensure()?;
        write_atomic(&self.dir, name, bytes)
    }

    /// The same store, serialized with every other store that changes `target` (see
    /// `SysctlTree::identity`).
    pub fn for_target(mut self, target: String) -> Self {
        self.target = Some(target);
        self
    }

    /// The pid written by the process holding the lock, if any (the file is emptied on release).
    pub fn lock_holder(&self) -> Option<u32> {
        let text = fs::read_to_string(self.dir.join("lock")).ok()?;
        text.trim().parse().ok()
    }

    /// Committed history, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.verify()?;
        Ok(self.read_history()?.0)
    }

    /// The history and the length of its file up to the last complete line (`None` when the
    /// entries come from a legacy `history.json`, or there is no history yet).
    fn read_history(&self) -> Result<(Vec<HistoryEntry>, Option<u64>)> {
        let path = self.dir.join(HISTORY);
        match read_trusted(&path, self.env.euid())? {
            Some(bytes) => {
                let (entries, complete) =
                    parse_history(&bytes).map_err(|e| corrupt_history(&path, e))?;
                Ok((entries, Some(complete as u64)))
            }
            None => Ok((self.legacy_history()?, None)),
        }
    }

    /// The bytes after the last complete history line: an append a crash cut short (the journal
    /// then still names its record), or damage. Empty when the history ends cleanly.
    pub fn torn_tail(&self) -> Result<String> {
        let path = self.dir.join(HISTORY);
        let bytes = read_trusted(&path, self.env.euid())?.unwrap_or_default();
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        Ok(String::from_utf8_lossy(&bytes[complete..]).into_owned())
    }

    /// The history file opened for writing in place (never through a symlink), and its path.
    fn history_for_write(&self) -> Result<(File, PathBuf)> {
        let path = self.dir.join(HISTORY);
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc_nofollow())
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok((file, path))
    }

    /// Cuts the history back to its last complete line (after a crash cut an append short).
    pub fn cut_torn_tail(&self, _lock: &StoreLock) -> Result<()> {
        let (_, complete) = self.read_history()?;
        let Some(len) = complete else {
            return Ok(());
        };
        let (file, path) = self.history_for_write()?;
        file.set_len(len)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io("truncate", &path, e))
    }

    /// The record ids under records/ (complete files only, not temp files).
    pub fn record_ids(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("records");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
            .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes what killed runs leave behind: temp files of atomic writes in the state dir and
    /// records/, and records no history line or journal names whose seq a later commit has
    /// taken (an abandoned change whose record removal was cut short). A record with a newer
    /// seq is kept: it may be a commit whose history line was lost. Returns what was removed.
    pub fn sweep(&self, _lock: &StoreLock) -> Result<Vec<PathBuf>> {
        let mut removed = remove_temp_files(&self.dir)?;
        removed.extend(remove_temp_files(&self.dir.join("records"))?);
        let history = self.history()?;
        let last = history.last().map_or(0, |e| e.seq);
        let journal = self.journal()?.map(|j| j.id);
        for id in self.record_ids()? {
            let named = history.iter().any(|e| e.id == id) || journal.as_deref() == Some(&id);
            if named {
                continue;
            }
            let superseded = self.load_unlisted(&id).is_ok_and(|r| r.seq <= last);
            if superseded {
                remove_durably(&self.dir.join("records"), &format!("{id}.json"))?;
                removed.push(self.record_path(&id));
            }
        }
        Ok(removed)
    }

    /// A record by full id whether or not the history names it, verified.
    pub fn load_unlisted(&self, id: &str) -> Result<Record> {
        let path = self.record_path(id);
        let bytes = read_trusted(&path, self.env.euid())?.ok_or_else(|| missing_snapshot(id))?;
        if hex(&Sha256::digest(&bytes)) != id {
            return Err(Error::state(
                format!("record {} fails its checksum", &id[..SHORT_ID]),
                None,
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::state(
                format!("record {} cannot be read: {e}", &id[..SHORT_ID]),
                None,
            )
        })
    }

    /// Appends a history line for a committed record whose line was lost (see
    /// `transaction::recover`), with the seq the record carries.
    pub fn restore_line(&self, lock: &StoreLock, id: &str) -> Result<u64> {
        self.cut_torn_tail(lock)?;
        let record = self.load_unlisted(id)?;
        let (entries, complete) = self.read_history()?;
        let entry = HistoryEntry {
            seq: record.seq,
            id: id.to_owned(),
        };
        if entries.last().is_some_and(|e| e.seq >= record.seq) {
            return Err(Error::state(
                format!("record {} does not follow the history", &id[..SHORT_ID]),
                None,
            ));
        }
        match complete {
            Some(len) => self.append_history(len, &entry)?,
            None => self.start_history(&entries, &entry)?,
        }
        Ok(entry.seq)
    }

    /// The whole-file history of earlier builds, if there is one.
    fn legacy_history(&self) -> Result<Vec<HistoryEntry>> {
        let path = self.dir.join(LEGACY_HISTORY);
        match read_trusted(&path, self.env.euid())? {
            None => Ok(Vec::new()),
            Some(bytes) => serde_json::from_slice::<LegacyHistory>(&bytes)
                .map(|h| h.entries)
                .map_err(|e| corrupt_history(&path, e)),
        }
    }

    /// Loads and verifies a record by full id or unique prefix.
    pub fn load(&self, id: &str) -> Result<(String, Record)> {
        self.verify()?;
        let id = self.resolve_id(id)?;
        let path = self.record_path(&id);
        let bytes = read_trusted(&path, self.env.euid())?.ok_or_else(|| missing_snapshot(&id))?;
        if hex(&Sha256::digest(&bytes)) != id {
            return Err(Error::state(
                format!(
                    "snapshot {} is corrupt or was tampered with: its sha256 does not match its name",
                    &id[..SHORT_ID]
                ),
                Some(
                    "it will not be used; roll back to another snapshot with `sysprof rollback --to ID`",
                ),
            ));
        }
        let record = serde_json::from_slice(&bytes).map_err(|e| {
            Error::state(
                format!("snapshot {} cannot be read: {e}", &id[..SHORT_ID]),
                None,
            )
        })?;
        Ok((id, record))
    }

    fn resolve_id(&self, prefix: &str) -> Result<String> {
        if prefix.len() < 4 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::state(
                format!("{prefix:?} is not a snapshot id"),
                Some("ids are hex; see `sysprof history`"),
            ));
        }
        let lower = prefix.to_ascii_lowercase();
        if lower.len() == 64 {
            // A full id names its record whether or not the history lists it.
            return Ok(lower);
        }
        let ids: Vec<String> = self
            .history()?
            .into_iter()
            .map(|e| e.id)
            .filter(|id| id.starts_with(&lower))
            .collect();
        match ids.as_slice() {
            [one] => return Ok(one.clone()),
            [] => {}
            _ => {
                return Err(Error::state(
                    format!("snapshot id {prefix:?} is ambiguous"),
                    Some("give more characters"),
                ));
            }
        }
        // Only an unfinished change's record is not in the history yet.
        match self
            .journal()?
            .map(|j| j.id)
            .filter(|id| id.starts_with(&lower))
        {
            Some(id) => Ok(id),
            None => Err(missing_snapshot(prefix)),
        }
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join("records").join(format!("{id}.json"))
    }

    /// Whether the record file `id` (a full id) is present.
    pub fn has_record(&self, id: &str) -> bool {
        fs::symlink_metadata(self.record_path(id)).is_ok()
    }

    /// Moves the journal aside (`journal.json.discarded-SECONDS`), keeping it for inspection:
    /// the way out when the journal's record is gone and nothing can be recovered.
    pub fn discard_journal(&self, _lock: &StoreLock) -> Result<Option<PathBuf>> {
        let from = self.dir.join("journal.json");
        if fs::symlink_metadata(&from).is_err() {
            return Ok(None);
        }
        let secs = self
            .env
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let to = self.dir.join(format!("journal.json.discarded-{secs}"));
        fs::rename(&from, &to).map_err(|e| Error::io("move aside", &from, e))?;
        sync_dir(&self.dir)?;
        Ok(Some(to))
    }

    /// Makes a record and its journal durable; returns the record id.
    pub fn begin(&self, _lock: &StoreLock, record: &Record) -> Result<String> {
        let bytes = record.canonical_bytes();
        let id = hex(&Sha256::digest(&bytes));
        write_atomic(&self.dir.join("records"), &format!("{id}.json"), &bytes)?;
        self.set_phase(&id, Phase::Intent)?;
        Ok(id)
    }

    /// Records how far the in-flight change got.
    pub fn set_phase(&self, id: &str, phase: Phase) -> Result<()> {
        let journal = Journal {
            id: id.to_owned(),
            phase,
        };
        write_atomic(
            &self.dir,
            "journal.json",
            &serde_json::to_vec(&journal).expect("journal serialises"),
        )
    }

    /// The in-flight change, if a previous run did not finish.
    pub fn journal(&self) -> Result<Option<Journal>> {
        self.verify()?;
        let path = self.dir.join("journal.json");
        match read_trusted(&path, self.env.euid())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::state(
                    format!("journal {} is corrupt: {e}", path.display()),
                    Some("compare the kernel with `sysprof status` (drift) and the persisted file, fix by hand if needed, then run `sysprof recover --discard-journal` (it keeps the journal aside)"),
                )
            }),
        }
    }

    /// Checks, writing nothing, that a commit could append to the history (before any kernel
    /// write, so a history that cannot be written stops a change before it starts).
    pub fn check_writable(&self) -> Result<()> {
        let path = self.dir.join(HISTORY);
        match OpenOptions::new()
            .append(true)
            .custom_flags(libc_nofollow())
            .open(&path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => check_writable_dir(&self.dir),
            Err(e) => Err(Error::io("append to", &path, e)),
        }
    }

    /// Appends the record to the history, then drops the journal.
    pub fn commit(&self, _lock: &StoreLock, id: &str) -> Result<u64> {
        let (entries, complete) = self.read_history()?;
        let seq = match entries.last() {
            Some(last) if last.id == id => last.seq,
            last => {
                let entry = HistoryEntry {
                    seq: last.map_or(1, |e| e.seq + 1),
                    id: id.to_owned(),
                };
                match complete {
                    Some(len) => self.append_history(len, &entry)?,
                    None => self.start_history(&entries, &entry)?,
                }
                entry.seq
            }
        };
        // Not fsync'd: the history above is durable and names the record, and a journal that
        // survives a power loss is completed by the next `recover` (its id is in the history),
        // which also makes the removal durable with the next journal write.
        remove(&self.dir.join("journal.json"))?;
        Ok(seq)
    }

    /// Writes `entry` as the line after the first `len` bytes (dropping a cut-short last line)
    /// and flushes it: one `fdatasync`, no rename, no directory flush.
    fn append_history(&self, len: u64, entry: &HistoryEntry) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let (file, path) = self.history_for_write()?;
        let line = history_line(entry);
        // Crash tests stop between two halves to leave a torn line; one write otherwise.
        let split = match cfg!(feature = "fault-injection") {
            true => line.len() / 2,
            false => line.len(),
        };
        let (head, tail) = line.split_at(split);
        crate::change::fault::point("before-append", HISTORY);
        crate::change::fault::io_point("append", HISTORY)
            .and_then(|()| file.set_len(len))
            .and_then(|()| file.write_all_at(head, len))
            .map_err(|e| Error::io("append to", &path, e))?;
        crate::change::fault::point("mid-append", HISTORY);
        file.write_all_at(tail, len + head.len() as u64)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io("append to", &path, e))?;
        crate::change::fault::point("after-append", HISTORY);
        Ok(())
    }

    /// Creates `history.jsonl` with the legacy entries (if any) and `entry`, then removes the
    /// legacy file. Between the two, both exist and the new one is read.
    fn start_history(&self, legacy: &[HistoryEntry], entry: &HistoryEntry) -> Result<()> {
        let text: Vec<u8> = legacy
            .iter()
            .chain(std::iter::once(entry))
            .flat_map(history_line)
            .collect();
        write_atomic(&self.dir, HISTORY, &text)?;
        remove_durably(&self.dir, LEGACY_HISTORY)
    }

    /// Drops an in-flight change that was fully undone, with its record.
    pub fn abandon(&self, _lock: &StoreLock, id: &str) -> Result<()> {
        remove_durably(&self.dir, "journal.json")?;
        if !self.history()?.iter().any(|e| e.id == id) {
            remove_durably(&self.dir.join("records"), &format!("{id}.json"))?;
        }
        Ok(())
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> Result<u64> {
        Ok(self.history()?.last().map_or(1, |e| e.seq + 1))
    }
}

fn missing_snapshot(id: &str) -> Error {
    Error::state(
        format!("no snapshot {id:?} in the history"),
        Some("list snapshots with `sysprof history`"),
    )
}

/// The state dir (and records/) must be a real directory, ours, and writable by nobody else:
/// refused otherwise, never repaired on the fly (another user could have planted records).
fn check_private_dir(
    dir: &Path,
    meta: &fs::Metadata,
    euid: u32,
) -> std::result::Result<(), String> {
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(format!(
            "state dir {} is not a plain directory ({})",
            dir.display(),
            crate::files::kind(meta)
        ));
    }
    if meta.uid() != euid {
        return Err(format!(
            "state dir {} is owned by uid {}, not by uid {euid}",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "state dir {} has mode {:o}: other users can write it",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

fn libc_nofollow() -> i32 {
    nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC
}

/// Largest state file read (records of thousands of keys, long histories).
const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Removes the temp files atomic writes leave when killed (`.NAME.XXXXXX` next to `NAME`).
pub fn remove_temp_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = TEMP_OF.iter().any(|base| is_temp_of(&name, base))
            || (name.starts_with('.') && name.contains(".json.") && name.len() > 70);
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            remove_durably(dir, &name)?;
            removed.push(dir.join(name));
        }
    }
    Ok(removed)
}

/// The files written by temp file + rename whose leftovers [`remove_temp_files`] removes.
const TEMP_OF: &[&str] = &["journal.json", HISTORY, "pending.json", "99-sysprof.conf"];

/// Whether `name` is a temp file of `base` (`.base.` followed by tempfile's random suffix).
fn is_temp_of(name: &str, base: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(base))
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|suffix| {
            suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Reads a file sysprof keeps (state dir, persisted file): a regular file, not a symlink, owned
/// by `uid` (or root) and writable by nobody else; `None` when absent.
pub fn read_trusted(path: &Path, uid: u32) -> Result<Option<Vec<u8>>> {
    use crate::files::{self, Policy, ReadError};
    match files::read(path, Policy::state(MAX_STATE_BYTES, uid)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadError::Missing) => Ok(None),
        Err(ReadError::Io(e)) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
            let dir = path.parent().unwrap_or(path);
            Err(Error::state(
                format!(
                    "{} is not a plain directory (reading {})",
                    dir.display(),
                    path.display()
                ),
                Some("remove it or pick another --state-dir"),
            ))
        }
        Err(ReadError::Io(e)) => Err(Error::io("read", path, e)),
        Err(why) => Err(Error::state(
            format!("refusing to read {}: {why}", path.display()),
            Some(
                "sysprof only trusts files it wrote: remove it, or fix its owner (chown) and mode (chmod go-w) if it is yours",
            ),
        )),
    }
}

/// Writes `name` in `dir` durably: temp file (0600) in the same dir, fsync, rename, fsync dir.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(dir, name, bytes, 0o600)
}

/// [`write_atomic`] with an explicit file mode (the persisted sysctl.d file is world-readable).
pub fn write_atomic_mode(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
    stage(dir, name, bytes, mode)?.install()
}

/// A file written and flushed next to its place, waiting to be renamed over it: what can fail
/// (permissions, a read-only or full file system) fails while nothing else has changed yet.
#[derive(Debug)]
pub struct Staged {
    temp: tempfile::NamedTempFile,
    dir: PathBuf,
    name: String,
}

/// Writes `bytes` to a temp file (`mode`) in `dir` and flushes it; [`Staged::install`] renames it
/// to `name`. Dropped without installing, the temp file is removed.
pub fn stage(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<Staged> {
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temp file in", dir, e))?;
    temp.write_all(bytes)
        .and_then(|_| temp.as_file().sync_all())
        .map_err(|e| Error::io("write", temp.path().to_owned(), e))?;
    Ok(Staged {
        temp,
        dir: dir.to_owned(),
        name: name.to_owned(),
    })
}

impl Staged {
    /// Renames the staged file into place and flushes the directory.
    pub fn install(self) -> Result<()> {
        let target = self.dir.join(&self.name);
        crate::change::fault::point("before-rename", &self.name);
        self.temp
            .persist(&target)
            .map_err(|e| Error::io("rename into", &target, e.error))?;
        crate::change::fault::point("after-rename", &self.name);
        sync_dir(&self.dir)
    }
}

/// Whether this process may create files in `dir` (for a removal planned later).
pub fn check_writable_dir(dir: &Path) -> Result<()> {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
        .map_err(|e| Error::io("write into", dir, std::io::Error::from(e)))
}

/// Removes `path` if present, without fsyncing its directory.
fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Removes `name` from `dir` (if present) and fsyncs the directory.
pub fn remove_durably(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// fsyncs a directory so renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::record::{KeyChange, RECORD_FORMAT, RecordKind};
    use crate::env::SYSTEM;
    use crate::profile::key::SysctlKey;
    use crate::profile::value::Value;

    fn record(seq: u64) -> Record {
        Record {
            format: RECORD_FORMAT,
            seq,
            kind: RecordKind::Apply,
            time: "2026-11-22T00:00:00Z".into(),
            user: "0(root)".into(),
            host: "h".into(),
            kernel: "6.18".into(),
            netns: None,
            profile: None,
            restores: None,
            changes: vec![KeyChange {
                key: SysctlKey::parse("net.ipv4.tcp_fin_timeout").unwrap(),
                before: Value::from_text("60"),
                after: Value::from_text("30"),
                released: false,
                implied: false,
            }],
            persist: None,
        }
    }

    #[test]
    fn history_appends_lines_and_ignores_a_torn_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"), &SYSTEM);
        let lock = store.lock(Duration::from_secs(1)).unwrap();
        let ids: Vec<String> = (1..=2)
            .map(|seq| store.begin(&lock, &record(seq)).unwrap())
            .collect();
        assert_eq!(store.commit(&lock, &ids[0]).unwrap(), 1);
        let path = dir.path().join("state").join(HISTORY);
        let one_line = std::fs::read(&path).unwrap();
        // A crash in the middle of the next append leaves half a line.
        let mut torn = one_line.clone();
        torn.extend_from_slice(br#"{"seq":2,"id":"ab"#);
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(
            store.history().unwrap().len(),
            1,
            "the torn line is not an entry"
        );
        assert_eq!(store.commit(&lock, &ids[1]).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with('\n') && !text.contains("\"ab{"), "{text}");
        assert_eq!(
            store
                .history()
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        // Committing the last entry again (recovery) adds nothing.
        assert_eq!(store.commit(&lock, &ids[1]).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // A complete line that is not an entry is corruption, not a torn append.
        std::fs::write(&path, format!("{text}{{ not json\n")).unwrap();
        let err = store.history().unwrap_err().to_string();
        assert!(
            err.contains("is corrupt") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn a_legacy_history_is_read_and_replaced_at_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"), &SYSTEM);
        let lock = store.lock(Duration::from_secs(1)).unwrap();
        // A change committed by an earlier build: its record, and the whole-file history.
        let old = store.begin(&lock, &record(1)).unwrap();
        let state = dir.path().join("state");
        std::fs::remove_file(state.join("journal.json")).unwrap();
        let legacy = serde_json::json!({ "entries": [{ "seq": 1, "id": old }] });
        std::fs::write(state.join(LEGACY_HISTORY), legacy.to_string()).unwrap();
        assert_eq!(store.history().unwrap()[0].id, old);
        let new = store.begin(&lock, &record(2)).unwrap();
        assert_eq!(store.commit(&lock, &new).unwrap(), 2);
        assert!(!state.join(LEGACY_HISTORY).exists());
        let ids: Vec<String> = store.history().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, [old, new]);
    }

    #[test]
    fn records_are_content_addressed_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"), &SYSTEM);
        let lock = store.lock(Duration::from_secs(1)).unwrap();
        let id = store.begin(&lock, &record(1)).unwrap();
        assert_eq!(
            store.journal().unwrap().unwrap(),
            Journal {
                id: id.clone(),
                phase: Phase::Intent
            }
        );
        assert_eq!(store.commit(&lock, &id).unwrap(), 1);
        assert!(store.journal().unwrap().is_none());
        assert_eq!(store.load(&id[..8]).unwrap().1, record(1));

        let path = store.record_path(&id);
        let tampered = fs::read_to_string(&path)
            .unwrap()
            .replace("\"30\"", "\"31\"");
        fs::write(&path, tampered).unwrap();
        assert!(
            store
                .load(&id)
                .unwrap_err()
                .to_string()
                .contains("tampered")
        );
        assert!(
            store
                .load("abcdef")
                .unwrap_err()
                .to_string()
                .contains("no snapshot")
        );
    }

    #[test]
    fn modes_are_private_and_symlinks_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"), &SYSTEM);
        let lock = store.lock(Duration::from_secs(1)).unwrap();
        let id = store.begin(&lock, &record(1)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.record_path(&id)), 0o600);
        assert_eq!(mode(&store.dir().join("journal.json")), 0o600);

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(store.dir(), &link).unwrap();
        assert!(
            Store::new(&link, &SYSTEM)
                .ensure()
                .unwrap_err()
                .to_string()
                .contains("symlink")
        );
    }

    #[test]
    fn a_second_locker_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), &SYSTEM);
        let _held = store.lock(Duration::from_secs(1)).unwrap();
        let err = store.lock(Duration::from_millis(50)).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }
}
