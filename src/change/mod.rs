//! Changing the host: plans, the one transaction that executes them, the snapshot store,
//! history, rollback and recovery, and the persisted sysctl.d file.
//!
//! `plan` compares a profile with the kernel; `apply` and `rollback` turn a plan or the history
//! into a `record::Change`; `transaction::execute` carries every change out (and `recover`
//! finishes an interrupted one); `store` keeps records, history, journal and lock.

pub mod apply;
pub mod context;
pub mod coupled;
pub mod fault;
pub mod history;
pub mod persist;
pub mod plan;
pub mod record;
pub mod rollback;
pub mod saved;
pub mod store;
pub mod transaction;
