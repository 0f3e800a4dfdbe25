//! Diagnosing a host: the seeds' failure modes from kernel counters (`doctor`), keys another
//! writer changed since sysprof set them (`drift`), and both with the state dir as Prometheus
//! metrics for monitoring (`metrics`).

pub mod doctor;
pub mod drift;
pub mod metrics;
