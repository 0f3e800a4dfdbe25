//! sysprof: declarative, validated, reversible Linux sysctl profiles.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! profile (YAML, positions) → schema + validate + rules (constraints) → plan (diff, plain data)
//!     → apply (journaled transaction) → store (snapshots, history, lock) → rollback / recover
//! ```
//!
//! `kernel` is the only code touching sysctl files; `netns` enters a namespace before it does;
//! `cli` and `commands` are the thin edge that parses flags and renders results.
#![deny(missing_docs)]

pub mod apply;
pub mod boot;
pub mod cli;
pub mod commands;
pub mod confirm;
pub mod context;
pub mod doctor;
pub mod drift;
pub mod emit;
pub mod error;
pub mod export;
pub mod fault;
pub mod glob;
pub mod health;
pub mod import;
pub mod json_schema;
pub mod k8s;
pub mod kernel;
pub mod key;
pub mod netns;
pub mod persist;
pub mod plan;
pub mod procnet;
pub mod profile;
pub mod render;
pub mod rollback;
pub mod rollout;
pub mod rules;
pub mod schema;
pub mod section;
pub mod sockets;
pub mod store;
pub mod validate;
pub mod value;
pub mod yaml;
