//! sysprof: declarative, validated, reversible Linux sysctl profiles.
//!
//! The crate is laid out as the pipeline it runs, one directory per stage:
//!
//! ```text
//! profile (YAML, keys, values, positions) → schema (catalogue, validate, rules)
//!     → change (plan, transaction, store, rollback, persist)
//!     → canary (health gates, confirm/watcher, cohorts: policies around one transaction)
//! adopt (import, export, boot order, k8s) and diagnose (doctor, drift) serve operators;
//! kernel (sysctl tree, netns, /proc/net tables) is the only code touching the kernel;
//! cli is the thin edge (flags → settings → commands → one renderer).
//! ```
//!
//! `error` is the one error type and the exit codes; `env` is the process around the core
//! (clock, sleep, identity, pid, spawning), injected so the core never reads it directly.
#![deny(missing_docs)]

pub mod adopt;
pub mod canary;
pub mod change;
pub mod cli;
pub mod diagnose;
pub mod env;
pub mod error;
pub mod files;
pub mod kernel;
pub mod profile;
pub mod schema;
