//! Changing the host: plans, the one transaction that executes them, the snapshot store,
//! rollback and recovery, and the persisted sysctl.d file.

pub mod apply;
pub mod context;
pub mod fault;
pub mod persist;
pub mod plan;
pub mod rollback;
pub mod store;
