//! Diagnosing a host: the seeds' failure modes from kernel counters (`doctor`), and keys another
//! writer changed since sysprof set them (`drift`).

pub mod doctor;
pub mod drift;
