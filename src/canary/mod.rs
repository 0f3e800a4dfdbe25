//! Staged, watched and confirmed changes: policies around one transaction.
//!
//! `health` judges kernel counters (`sample`) against a profile's gates; `confirm` keeps a change
//! pending until it is confirmed or its deadline passes, enforced by a detached `watcher`;
//! `cohort` decides which hosts belong to which rollout stage; `tripped` remembers the profile
//! versions whose watch tripped, so retries do not re-apply them.

pub mod cohort;
pub mod confirm;
pub mod health;
pub mod safe_apply;
pub mod sample;
pub mod tripped;
pub mod watcher;
