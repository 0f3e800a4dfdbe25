//! The context the core runs in: sysctl tree, state store, persisted file, schema, target, and
//! the process around it.
//!
//! The CLI builds it once from validated settings; the core never reads argv, the environment
//! or `/` on its own. Tests build the same context over a fake tree or inside a network
//! namespace.

use std::path::PathBuf;
use std::time::Duration;

use crate::change::record::Stamp;
use crate::change::store::Store;
use crate::env::Env;
use crate::error::Result;
use crate::kernel::SysctlTree;
use crate::schema::Schema;
use crate::schema::finding::Target;

/// Everything the core needs from outside.
pub struct Context {
    /// The sysctl tree (already inside `--netns`, if given).
    pub tree: SysctlTree,
    /// The state store.
    pub store: Store,
    /// The persisted sysctl.d file, or None when persisting is off.
    pub persist_file: Option<PathBuf>,
    /// The schema.
    pub schema: Schema,
    /// What profiles are validated for.
    pub target: Target,
    /// How long to wait for the state lock.
    pub lock_timeout: Duration,
    /// The network namespace entered, if any.
    pub netns: Option<String>,
    /// Clock, identity, processes.
    pub env: &'static dyn Env,
}

impl Context {
    /// The stamp of a record written now, as the next history entry.
    pub fn stamp(&self) -> Result<Stamp> {
        Ok(Stamp {
            seq: self.store.next_seq()?,
            time: humantime::format_rfc3339_seconds(self.env.now()).to_string(),
            identity: self.env.identity(),
            netns: self.netns.clone(),
        })
    }
}
