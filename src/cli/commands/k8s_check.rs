//! `sysprof k8s check FILE…`: the sysctls of every pod spec in Kubernetes manifests, judged for
//! the nodes' Kubernetes and kernel versions and the kubelet's allowlist before `kubectl apply`.

use std::path::PathBuf;

use serde_json::{Value as Json, json};

use crate::adopt::manifests::{self, Judge, UnsafePattern};
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Result, exit};

/// Checks each file; exit 3 if any pod spec has errors (or warnings with --deny-warnings).
pub fn run(
    s: &Settings,
    files: &[PathBuf],
    allowed: &[UnsafePattern],
    out: &mut Output,
) -> Result<i32> {
    let (schema, target) = (s.schema()?, s.target());
    let judge = Judge {
        schema: &schema,
        target: &target,
        allowed,
    };
    let mut code = exit::OK;
    let mut results: Vec<Json> = Vec::new();
    for path in files {
        let checked = match manifests::check_file(path, &judge) {
            Ok(checked) => checked,
            Err(e) => {
                out.diag(|w| render::error(w, &e))?;
                results.push(json!({ "file": path, "valid": false, "error": e.to_string() }));
                code = code.max(e.exit_code());
                continue;
            }
        };
        let valid = !checked.blocks(s.deny_warnings);
        code = code.max(if valid { exit::OK } else { exit::INVALID_INPUT });
        if !out.json() {
            out.block(|w| render::manifests::checked(w, &checked, s.deny_warnings))?;
        }
        results.push(json!({ "file": checked.file, "valid": valid, "documents": checked.documents, "workloads": checked.workloads }));
    }
    if out.json() {
        let target = json!({ "kernel": target.kernel, "k8s": target.k8s });
        out.emit(&json!({ "ok": code == exit::OK, "target": target, "allowed_unsafe": allowed, "files": results }))?;
    }
    Ok(code)
}
