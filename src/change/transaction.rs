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
use crate::change::store::{Phase, StoreLock};
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
    let mut txn = Transaction::begin(ctx, lock, &record)?;
    if let Err(cause) = txn.carry_out(&record) {
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
/// undoes it. Every mutating command calls this first, under the lock.
pub fn recover(ctx: &Context, lock: &StoreLock) -> Result<Recovered> {
    let Some(journal) = ctx.store.journal()? else {
        return Ok(Recovered::Nothing);
    };
    if ctx.store.history()?.iter().any(|e| e.id == journal.id) {
        ctx.store.commit(lock, &journal.id)?;
        return Ok(Recovered::Completed);
    }
    let (id, record) = ctx.store.load(&journal.id)?;
    // Journals of earlier builds could say how far the change got.
    let finished = journal.phase == Phase::Persisted
        || (journal.phase == Phase::Written && record.persist.is_none());
    if finished && state_matches(&ctx.tree, &record)? {
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

    /// Writes every key of the record, then the persisted file.
    fn carry_out(&mut self, record: &Record) -> Result<()> {
        for change in &record.changes {
            self.write(change)?;
        }
        if let Some(p) = &record.persist {
            self.persisted = Some(p.clone());
            persist::write(Path::new(&p.path), p.after.as_deref())?;
        }
        Ok(())
    }

    /// Writes `after`, remembering `before` for undo, and checks the kernel kept it.
    fn write(&mut self, change: &KeyChange) -> Result<()> {
        let tree = &self.ctx.tree;
        tree.write(&change.key, &change.after)?;
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

    /// Appends the record to the history and drops the journal.
    pub fn commit(mut self) -> Result<(String, u64)> {
        let seq = self.ctx.store.commit(self.lock, &self.id)?;
        self.done = true;
        Ok((std::mem::take(&mut self.id), seq))
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
            let undone = persist::read(path).and_then(|now| match now == p.before {
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

/// Whether the kernel and the persisted file are in the state the record leads to.
fn state_matches(tree: &SysctlTree, record: &Record) -> Result<bool> {
    for change in &record.changes {
        if !tree
            .read(&change.key)
            .is_ok_and(|v| v.same_as(&change.after))
        {
            return Ok(false);
        }
    }
    match &record.persist {
        Some(p) => Ok(persist::read(Path::new(&p.path))? == p.after),
        None => Ok(true),
    }
}
