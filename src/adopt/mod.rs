//! Meeting operators where they are: importing sysctl.d files, exporting the running kernel,
//! boot precedence of sysctl.d files, globs over the tree, profile YAML output, Kubernetes pods
//! and the manifests that carry their sysctls.

pub mod adopted;
pub mod boot;
pub mod emit;
pub mod export;
pub mod glob;
pub mod import;
pub mod k8s;
pub mod manifests;
