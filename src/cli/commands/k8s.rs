//! `sysprof k8s pod-sysctls PROFILE`: a pod's securityContext.sysctls and the kubelet
//! allowedUnsafeSysctls it needs.

use std::io::Write;
use std::path::Path;

use crate::adopt::k8s;
use crate::cli::output::{Output, stdout_err};
use crate::cli::settings::Settings;

use crate::cli::render;
use crate::error::{Error, Result, exit};
use crate::profile::Profile;
use crate::schema::Severity;

/// Renders the pod sysctls as YAML (or JSON); refuses keys a pod cannot set (exit 3).
pub fn pod_sysctls(s: &Settings, path: &Path, out: &mut Output) -> Result<i32> {
    let schema = s.schema()?;
    let mut profile = Profile::load(path)?;
    super::expand_patterns(&mut profile, None);
    let mut target = s.target().for_profile(&profile);
    target.child_netns = true;
    let (pod, report) = k8s::pod_sysctls(&profile, &schema, &target);
    if !out.json() {
        let mut shown = report.clone();
        shown.findings.retain(|f| f.severity == Severity::Error);
        render::findings(&mut out.err, &profile, &shown).map_err(stdout_err)?;
    }
    if report.blocks(false) {
        return Err(Error::Invalid {
            file: path.display().to_string(),
            errors: report.count(Severity::Error),
            findings: serde_json::to_value(&report.findings).ok(),
        });
    }
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "profile": profile.name, "k8s": pod.k8s.map(|v| v.to_string()), "sysctls": pod.sysctls, "allowedUnsafeSysctls": pod.allowed_unsafe }))?;
        return Ok(exit::OK);
    }
    write!(out.out, "{}", k8s::render_yaml(&pod, &profile)).map_err(stdout_err)?;
    Ok(exit::OK)
}
