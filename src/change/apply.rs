//! Applying changes: an all-or-nothing transaction over kernel writes, journaled.
//!
//! [`execute`] is the one path by which sysprof changes a host, for `apply`, `rollback` and
//! recovery alike: the record and journal are durable before the first kernel write; each key is
//! written and read back; any failure undoes the keys already written in reverse order (and keeps
//! undoing past an undo that fails, reporting it); the persisted file is replaced last; the
//! history names the record before the journal goes. The journal is written once, as `Intent`:
//! a crash before the history commit is undone by recovery, one after it is complete. [`apply`] turns a validated profile into
//! such a record.

use std::path::Path;

use crate::change::context::Context;
use crate::change::fault;
use crate::change::persist;
use crate::change::plan::{Plan, Status};
use crate::change::rollback;
use crate::change::store::{KeyChange, PersistChange, ProfileRef, Record, RecordKind, StoreLock};
use crate::error::{Error, KernelFault, Result};
use crate::kernel::SysctlTree;
use crate::profile::Profile;
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;

/// What `apply` did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Kernel and persisted file already match the profile; nothing recorded.
    InSync,
    /// `--dry-run`: the record that would have been made.
    DryRun {
        /// The would-be record.
        record: Record,
    },
    /// Changes made and recorded.
    Applied {
        /// Record id.
        id: String,
        /// History position.
        seq: u64,
        /// The record.
        record: Record,
    },
}

/// Keys written so far, with their old values, for undo.
pub struct Transaction<'t> {
    tree: &'t SysctlTree,
    written: Vec<(SysctlKey, Value)>,
}

impl<'t> Transaction<'t> {
    /// Starts an empty transaction on a tree.
    pub fn new(tree: &'t SysctlTree) -> Self {
        Self {
            tree,
            written: Vec::new(),
        }
    }

    /// Writes `after`, remembering `before` for undo, and checks the kernel kept it.
    pub fn write(&mut self, key: &SysctlKey, before: &Value, after: &Value) -> Result<()> {
        self.tree.write(key, after)?;
        self.written.push((key.clone(), before.clone()));
        fault::point("after-write", "");
        let read_back = self.tree.read(key)?;
        fault::point("after-readback", "");
        if !read_back.same_as(after) {
            return Err(Error::Kernel {
                op: "write",
                key: key.to_string(),
                fault: KernelFault::NotRetained,
                value: Some(format!("{after}, read back {read_back}")),
            });
        }
        Ok(())
    }

    /// Restores every written key in reverse order; returns (restored, failures).
    pub fn undo(self) -> (usize, Vec<String>) {
        let mut failures = Vec::new();
        let mut restored = 0;
        for (key, before) in self.written.iter().rev() {
            match restore(self.tree, key, before) {
                Ok(()) => restored += 1,
                Err(e) => failures.push(format!("{key} (wanted {before}): {e}")),
            }
        }
        (restored, failures)
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

/// Carries out a record under the lock; returns (id, history seq).
pub fn execute(ctx: &Context, lock: &StoreLock, record: &Record) -> Result<(String, u64)> {
    let id = ctx.store.begin(lock, record)?;
    fault::point("after-snapshot", "");
    let mut txn = Transaction::new(&ctx.tree);
    for change in &record.changes {
        let key = SysctlKey::parse(&change.key)?;
        if let Err(cause) = txn.write(
            &key,
            &Value::from_text(&change.before),
            &Value::from_text(&change.after),
        ) {
            return Err(abort(ctx, lock, &id, txn, None, cause));
        }
    }
    if let Some(p) = &record.persist {
        if let Err(cause) = persist::write(Path::new(&p.path), p.after.as_deref()) {
            return Err(abort(ctx, lock, &id, txn, Some(p), cause));
        }
    }
    // No journal write between here and the commit (two fsyncs each): until the history names
    // the record, the journal says `Intent`, and recovery undoes the change, so a crash anywhere
    // in between leaves the old state; after it, the new one.
    let seq = ctx.store.commit(lock, &id)?;
    Ok((id, seq))
}

/// Undoes a failed change; drops its journal only if everything was restored.
fn abort(
    ctx: &Context,
    lock: &StoreLock,
    id: &str,
    txn: Transaction,
    persisted: Option<&PersistChange>,
    cause: Error,
) -> Error {
    let (undone, mut undo_failures) = txn.undo();
    if let Some(p) = persisted {
        if let Err(e) = persist::write(Path::new(&p.path), p.before.as_deref()) {
            undo_failures.push(format!("{}: {e}", p.path));
        }
    }
    if undo_failures.is_empty() {
        if let Err(e) = ctx.store.abandon(lock, id) {
            undo_failures.push(format!("journal: {e}"));
        }
    }
    Error::Aborted {
        cause: Box::new(cause),
        undone,
        undo_failures,
    }
}

/// Applies a validated profile: lock, recover, plan, record, execute.
pub fn apply(ctx: &Context, profile: &Profile, dry_run: bool) -> Result<(Plan, Outcome)> {
    let lock = ctx.store.lock(ctx.lock_timeout)?;
    rollback::recover(ctx, &lock)?;
    let plan = Plan::build(profile, &ctx.tree);
    if let Some(blocker) = plan.blockers().next() {
        if blocker.status == Status::Unreadable {
            // Report the real read error (e.g. EISDIR), not a generic permission problem.
            ctx.tree.read(&blocker.key)?;
        }
        let fault = if blocker.status == Status::Missing {
            KernelFault::NotFound
        } else {
            KernelFault::PermissionDenied
        };
        return Err(Error::Kernel {
            op: "read",
            key: blocker.key.to_string(),
            fault,
            value: None,
        });
    }
    let record = apply_record(ctx, profile, &plan)?;
    if record.is_empty() {
        return Ok((plan, Outcome::InSync));
    }
    if dry_run {
        return Ok((plan, Outcome::DryRun { record }));
    }
    let (id, seq) = execute(ctx, &lock, &record)?;
    Ok((plan, Outcome::Applied { id, seq, record }))
}

fn apply_record(ctx: &Context, profile: &Profile, plan: &Plan) -> Result<Record> {
    let changes = plan.pending().map(|c| KeyChange {
        key: c.key.to_string(),
        before: c.current.as_ref().map(Value::to_string).unwrap_or_default(),
        after: c.desired.to_string(),
    });
    let persist = match &ctx.persist_file {
        Some(path) => {
            let before = persist::read(path)?;
            let after = Some(persist::render(plan, &profile.path));
            (before != after).then(|| PersistChange {
                path: path.display().to_string(),
                before,
                after,
            })
        }
        None => None,
    };
    let profile_ref = ProfileRef {
        name: profile.name.clone(),
        path: profile.path.display().to_string(),
        sha256: profile.fingerprint.clone(),
    };
    Ok(ctx.new_record(
        ctx.store.next_seq()?,
        RecordKind::Apply,
        Some(profile_ref),
        None,
        changes.collect(),
        persist,
    ))
}
