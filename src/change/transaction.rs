//! The one way sysprof changes a host: [`execute`] carries out a [`Change`] as a transaction.
//!
//! Apply, rollback, the persisting step of `confirm` and the watcher's automatic revert all end
//! here, and recovery resumes an interrupted transaction through the same type. The order is
//! what makes a crash at any instant recoverable:
//!
//! 1. the record and the journal are durable before the first kernel write;
//! 2. each key is written in one `write(2)` and read back;
//! 3. the persisted sysctl.d file is replaced last (temp file + rename);
//! 4. the history names the record, then the journal goes.
//!
//! Any failure undoes what was written, keys in reverse order, keeping on past an undo that
//! fails and reporting each. A [`Transaction`] dropped without [`Transaction::commit`] undoes
//! itself. The journal is written once, as `Intent`: a crash before the history commit is undone
//! by recovery ([`recover`]), one after it is complete.

use std::path::Path;

use crate::change::context::Context;
use crate::change::fault;
use crate::change::persist;
use crate::change::record::{Change, KeyChange, PersistChange, Record};
use crate::change::store::{Journal, Phase, Staged, StoreLock};
use crate::error::{Error, KernelFault, Result};
use crate::kernel::SysctlTree;
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;

/// A change carried out and recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Committed {
    /// Record id (sha256 of the record).
    pub id: String,
    /// History position.
    pub seq: u64,
    /// The record.
    pub record: Record,
}

/// Executes `change` under the lock and records it; see the module docs for the order.
pub fn execute(ctx: &Context, lock: &StoreLock, change: Change) -> Result<Committed> {
    let record = Record::new(change, ctx.stamp()?);
    // Everything that could fail later is tried first, while nothing has changed: the history
    // must take an append, the persisted file is written beside its place.
    ctx.store.check_writable()?;
    let staged = match &record.persist {
        Some(p) => persist::stage(Path::new(&p.path), p.after.as_deref(), ctx.store.euid())?,
        None => None,
    };
    let mut txn = Transaction::begin(ctx, lock, &record)?;
    if let Err(cause) = txn.carry_out(&record, staged) {
        return Err(txn.abort(cause));
    }
    // No journal write between here and the commit: until the history names the record, the
    // journal says `Intent` and recovery undoes the change, so a crash anywhere in between
    // leaves the old state; after it, the new one.
    let (id, seq) = txn.commit()?;
    Ok(Committed { id, seq, record })
}

/// What recovery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovered {
    /// No unfinished change.
    Nothing,
    /// The change had provably finished; it was committed.
    Completed,
    /// The change was undone: the host is back to the old state.
    RolledBack,
}

/// Finishes an interrupted transaction: commits it if it provably completed, else resumes and
/// undoes it. Every mutating command calls this first, under the lock. It also mends the
/// history's tail (a line a crash cut short is removed; a committed line damage cut short is
/// restored from its record) and sweeps what killed runs left behind (temp files, abandoned
/// records).
pub fn recover(ctx: &Context, lock: &StoreLock) -> Result<Recovered> {
    let journal = ctx.store.journal()?;
    let torn = ctx.store.torn_tail()?;
    if !torn.is_empty() {
        mend_tail(ctx, lock, journal.as_ref().map(|j| j.id.as_str()), &torn)?;
    }
    let recovered = match journal {
        None => Recovered::Nothing,
        Some(journal) => finish(ctx, lock, journal)?,
    };
    ctx.store.sweep(lock)?;
    if let Some(dir) = ctx.persist_file.as_deref().and_then(Path::parent) {
        crate::change::store::remove_temp_files(dir)?;
    }
    Ok(recovered)
}

/// Deals with history bytes after the last complete line.
fn mend_tail(ctx: &Context, lock: &StoreLock, journal: Option<&str>, torn: &str) -> Result<()> {
    let named = torn_id(torn);
    if let Some(id) = journal.filter(|id| named.is_none_or(|n| id.starts_with(n))) {
        // This change's own append, cut short by a crash: it never committed (`finish`
        // undoes it).
        debug_assert!(!id.is_empty());
        return ctx.store.cut_torn_tail(lock);
    }
    let matches: Vec<String> = match named.filter(|n| n.len() >= 8) {
        Some(prefix) => ctx
            .store
            .record_ids()?
            .into_iter()
            .filter(|id| id.starts_with(prefix))
            .collect(),
        None => Vec::new(),
    };
    match matches.as_slice() {
        [id] => ctx.store.restore_line(lock, id).map(|_| ()),
        _ => Err(Error::state(
            format!(
                "history.jsonl ends in a damaged line ({:?}) and no single record matches it: the history lost its last entry",
                crate::error::shorten(torn)
            ),
            Some(
                "restore history.jsonl from a backup, or remove the damaged last line by hand once you know what it named (records/ holds every snapshot)",
            ),
        )),
    }
}

/// The record id prefix a cut-short history line names (`{"seq":3,"id":"ab12`).
fn torn_id(torn: &str) -> Option<&str> {
    let rest = &torn[torn.find("\"id\":\"")? + 6..];
    let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    (hex > 0).then(|| &rest[..hex])
}

/// Finishes the change a journal names.
fn finish(ctx: &Context, lock: &StoreLock, journal: Journal) -> Result<Recovered> {
    if ctx.store.history()?.iter().any(|e| e.id == journal.id) {
        ctx.store.commit(lock, &journal.id)?;
        return Ok(Recovered::Completed);
    }
    if !ctx.store.has_record(&journal.id) {
        return Err(Error::state(
            format!(
                "an interrupted change's journal names record {}, which is missing from records/: what it wrote cannot be told",
                &journal.id[..12.min(journal.id.len())]
            ),
            Some(
                "compare the kernel with `sysprof status` (drift) and the persisted file, fix by hand if needed, then run `sysprof recover --discard-journal`",
            ),
        ));
    }
    let (id, record) = ctx.store.load(&journal.id)?;
    check_journaled(ctx, &id, &record)?;
    // Journals of earlier builds could say how far the change got.
    let finished = journal.phase == Phase::Persisted
        || (journal.phase == Phase::Written && record.persist.is_none());
    if finished && state_matches(ctx, &record)? {
        ctx.store.commit(lock, &id)?;
        return Ok(Recovered::Completed);
    }
    let txn = Transaction::resume(ctx, lock, id, &record);
    let short = &txn.id[..12];
    let cause = Error::state(format!("recovering interrupted change {short}"), None);
    match txn.abort(cause) {
        Error::Aborted { undo_failures, .. } if undo_failures.is_empty() => {
            Ok(Recovered::RolledBack)
        }
        failed => Err(failed),
    }
}

/// A change in flight: what was written so far, for undo.
pub struct Transaction<'c> {
    ctx: &'c Context,
    lock: &'c StoreLock,
    id: String,
    /// Keys written so far with their values before, in write order.
    written: Vec<(SysctlKey, Value)>,
    /// The persisted file's change, once it was (or may have been) made.
    persisted: Option<PersistChange>,
    /// Committed or aborted: nothing left to undo on drop.
    done: bool,
}

impl<'c> Transaction<'c> {
    /// Makes the record and its journal durable: from here on a crash is recoverable.
    pub fn begin(ctx: &'c Context, lock: &'c StoreLock, record: &Record) -> Result<Self> {
        let id = ctx.store.begin(lock, record)?;
        fault::point("after-snapshot", "");
        Ok(Self {
            ctx,
            lock,
            id,
            written: Vec::new(),
            persisted: None,
            done: false,
        })
    }

    /// The transaction a journal names, as if every key and the file had been written: undoing
    /// restores only what differs from the old state.
    fn resume(ctx: &'c Context, lock: &'c StoreLock, id: String, record: &Record) -> Self {
        let written = record
            .changes
            .iter()
            .map(|c| (c.key.clone(), c.before.clone()))
            .collect();
        Self {
            ctx,
            lock,
            id,
            written,
            persisted: record.persist.clone(),
            done: false,
        }
    }

    /// Writes every key of the record, then puts the staged persisted file in place.
    fn carry_out(&mut self, record: &Record, staged: Option<Staged>) -> Result<()> {
        for change in &record.changes {
            self.write(change)?;
        }
        if let Some(p) = &record.persist {
            self.persisted = Some(p.clone());
            match staged {
                Some(staged) => staged.install()?,
                None => persist::write(Path::new(&p.path), p.after.as_deref())?,
            }
        }
        Ok(())
    }

    /// Writes `after`, remembering `before` for undo, and checks the kernel kept it.
    fn write(&mut self, change: &KeyChange) -> Result<()> {
        let tree = &self.ctx.tree;
        // An implied change is the kernel's doing (a partner's write): only checked.
        if !change.implied {
            tree.write(&change.key, &change.after)?;
        }
        self.written
            .push((change.key.clone(), change.before.clone()));
        fault::point("after-write", "");
        let read_back = tree.read(&change.key)?;
        fault::point("after-readback", "");
        if !read_back.same_as(&change.after) {
            return Err(Error::Kernel {
                op: "write",
                key: change.key.to_string(),
                fault: KernelFault::NotRetained,
                value: Some(format!("{}, read back {read_back}", change.after)),
            });
        }
        Ok(())
    }

    /// Appends the record to the history and drops the journal. If the history cannot take
    /// it, the change is undone rather than left in place for the next command to undo.
    pub fn commit(mut self) -> Result<(String, u64)> {
        match self.ctx.store.commit(self.lock, &self.id) {
            Ok(seq) => {
                self.done = true;
                Ok((std::mem::take(&mut self.id), seq))
            }
            Err(cause) => Err(self.abort(cause)),
        }
    }

    /// Undoes everything written, in reverse; drops the journal (and the record) only when
    /// everything was restored. Returns `cause` wrapped with what the undo did.
    pub fn abort(mut self, cause: Error) -> Error {
        self.done = true;
        let (undone, mut undo_failures) = self.undo();
        if undo_failures.is_empty() {
            if let Err(e) = self.ctx.store.abandon(self.lock, &self.id) {
                undo_failures.push(format!("journal: {e}"));
            }
        }
        Error::Aborted {
            cause: Box::new(cause),
            undone,
            undo_failures,
        }
    }

    /// Restores the written keys in reverse order and the persisted file; returns (restored,
    /// failures), carrying on past a failure.
    fn undo(&mut self) -> (usize, Vec<String>) {
        let mut failures = Vec::new();
        let mut restored = 0;
        for (key, before) in self.written.iter().rev() {
            match restore(&self.ctx.tree, key, before) {
                Ok(()) => restored += 1,
                Err(e) => failures.push(format!("{key} (wanted {before}): {e}")),
            }
        }
        if let Some(p) = &self.persisted {
            let path = Path::new(&p.path);
            let undone =
                persist::read(path, self.ctx.store.euid()).and_then(|now| match now == p.before {
                    true => Ok(()),
                    false => persist::write(path, p.before.as_deref()),
                });
            if let Err(e) = undone {
                failures.push(format!("{}: {e}", p.path));
            }
        }
        (restored, failures)
    }
}

impl Drop for Transaction<'_> {
    /// A transaction abandoned by an early return or a panic undoes itself; the journal stays
    /// for `recover` to confirm.
    fn drop(&mut self) {
        if !self.done {
            self.undo();
        }
    }
}

/// Writes `value` if the key does not hold it already, and verifies it.
pub fn restore(tree: &SysctlTree, key: &SysctlKey, value: &Value) -> Result<()> {
    if tree.read(key).is_ok_and(|now| now.same_as(value)) {
        return Ok(());
    }
    tree.write(key, value)?;
    let now = tree.read(key)?;
    if now.same_as(value) {
        Ok(())
    } else {
        Err(Error::Kernel {
            op: "restore",
            key: key.to_string(),
            fault: KernelFault::NotRetained,
            value: Some(value.to_string()),
        })
    }
}

/// Refuses to act on a journaled record whose values the schema rejects: recovery writes what
/// a record says, so it is checked like a profile would be (the state dir's ownership and
/// modes are what keep a planted record out in the first place; this is the second wall).
fn check_journaled(ctx: &Context, id: &str, record: &Record) -> Result<()> {
    for change in &record.changes {
        let Some(spec) = ctx.schema.lookup(&change.key) else {
            continue;
        };
        for value in [&change.before, &change.after] {
            let bad = crate::schema::validate::check_shape(spec, value)
                .err()
                .or_else(|| {
                    let bounds = spec.kernel_bounds?;
                    value
                        .tokens()
                        .iter()
                        .filter_map(|t| crate::profile::value::parse_decimal(t))
                        .find(|n| !bounds.contains(*n))
                        .map(|n| format!("{n} is outside {bounds}"))
                });
            if let Some(why) = bad {
                return Err(Error::state(
                    format!(
                        "the interrupted change {} holds a value the schema rejects for {}: {why}; not acting on it",
                        &id[..12],
                        change.key
                    ),
                    Some(
                        "inspect the record and journal.json in the state dir; remove the journal with `sysprof recover --discard-journal` if you did not write it",
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether the kernel and the persisted file are in the state the record leads to.
fn state_matches(ctx: &Context, record: &Record) -> Result<bool> {
    let tree = &ctx.tree;
    for change in &record.changes {
        if !tree
            .read(&change.key)
            .is_ok_and(|v| v.same_as(&change.after))
        {
            return Ok(false);
        }
    }
    match &record.persist {
        Some(p) => Ok(persist::read(Path::new(&p.path), ctx.store.euid())? == p.after),
        None => Ok(true),
    }
}
