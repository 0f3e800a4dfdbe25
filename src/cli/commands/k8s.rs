//! `sysprof k8s pod-sysctls PROFILE`: a pod's securityContext.sysctls and the kubelet
//! allowedUnsafeSysctls it needs.

use std::io::Write;
use std::path::Path;

use super::{Io, io_err};
use crate::adopt::k8s;
use crate::cli::Global;
use crate::cli::render;
use crate::error::{Error, Result, exit};
use crate::profile::Profile;
use crate::schema::Severity;

/// Renders the pod sysctls as YAML (or JSON); refuses keys a pod cannot set (exit 3).
pub fn pod_sysctls(g: &Global, path: &Path, io: &mut Io) -> Result<i32> {
    let schema = g.load_schema()?;
    let profile = Profile::load(path)?;
    let mut target = g.target().for_profile(&profile);
    target.child_netns = true;
    let (pod, report) = k8s::pod_sysctls(&profile, &schema, &target);
    if !io.json() {
        let mut shown = report.clone();
        shown.findings.retain(|f| f.severity == Severity::Error);
        render::findings(&mut io.err, &profile, &shown).map_err(io_err)?;
    }
    if report.blocks(false) {
        return Err(Error::Invalid {
            file: path.display().to_string(),
            errors: report.count(Severity::Error),
        });
    }
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "profile": profile.name, "k8s": pod.k8s.map(|v| v.to_string()), "sysctls": pod.sysctls, "allowedUnsafeSysctls": pod.allowed_unsafe }))?;
        return Ok(exit::OK);
    }
    write!(io.out, "{}", k8s::render_yaml(&pod, &profile)).map_err(io_err)?;
    Ok(exit::OK)
}
