//! Validation: judges a resolved profile against the schema for a target kernel.
//!
//! Per-key checks (known key, existence on the target kernel, shape, kernel and recommended
//! bounds, no-op keys, pointless defaults, pod scope) live here; cross-key and context rules
//! live in `rules`. The output is a [`Report`] of [`Finding`]s; nothing here touches the kernel
//! or prints.

use crate::profile::key::SysctlKey;
use crate::profile::value::{Value, parse_decimal, parse_port_list};
use crate::profile::{Profile, Setting};
use crate::schema::finding::{Finding, FindingBuilder, Report, Target};
use crate::schema::rules;
use crate::schema::{K8sClass, KeySpec, Schema, Scope, Severity, Shape};

/// Validates a profile: per-key checks, then rules, sorted by position.
pub fn validate(profile: &Profile, schema: &Schema, target: &Target) -> Report {
    let mut findings = Vec::new();
    for setting in profile.settings.values() {
        check_setting(setting, profile, schema, target, &mut findings);
    }
    rules::evaluate(profile, schema, target, &mut findings);
    drop_generic_duplicates(&mut findings);
    findings.sort_by(|a, b| {
        let pos = |f: &Finding| f.at.as_ref().map(|l| (l.file.clone(), l.line, l.col));
        pos(a).cmp(&pos(b)).then(b.severity.cmp(&a.severity))
    });
    Report { findings }
}

/// A specific rule about a key says more than the generic range warning: keep only the rule.
fn drop_generic_duplicates(findings: &mut Vec<Finding>) {
    let specific: Vec<Option<SysctlKey>> = findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning && f.rule != "recommended-bounds")
        .map(|f| f.key.clone())
        .collect();
    findings.retain(|f| f.rule != "recommended-bounds" || !specific.contains(&f.key));
}

fn check_setting(
    setting: &Setting,
    profile: &Profile,
    schema: &Schema,
    target: &Target,
    out: &mut Vec<Finding>,
) {
    let b = FindingBuilder {
        setting: Some(setting),
        key: None,
    };
    let Some(spec) = schema.lookup(&setting.key) else {
        let help = schema
            .suggest(&setting.key)
            .map(|s| format!("did you mean `{s}`?"));
        let help = help.or_else(|| {
            Some("add the key to a schema dir (--schema) if it is site-specific".into())
        });
        out.push(b.finding(
            Severity::Error,
            "unknown-key",
            format!("{} is not a known sysctl", setting.key),
            help,
            &rules::sources("unknown-key"),
        ));
        return;
    };
    if !check_existence(&b, spec, target, out) {
        return;
    }
    if let Err(message) = check_shape(spec, &setting.value) {
        out.push(b.finding(
            Severity::Error,
            "value-shape",
            format!("{}: {message}", setting.key),
            shape_help(spec),
            spec.sources,
        ));
        return;
    }
    check_bounds(&b, spec, &setting.value, target.hz, out);
    check_noop_and_default(&b, spec, setting, target, out);
    if profile.fact("kubernetes_pod") {
        check_pod(&b, spec, target, out);
    }
}

/// Removed / not-yet-added keys; returns false when further checks are pointless.
fn check_existence(
    b: &FindingBuilder,
    spec: &KeySpec,
    target: &Target,
    out: &mut Vec<Finding>,
) -> bool {
    let key = b.setting.map(|s| s.key.to_string()).unwrap_or_default();
    let help = spec
        .replacement
        .as_ref()
        .map(|r| format!("use {r} instead"));
    if spec.removed.is_none() && spec.added.is_none() && spec.replacement.is_some() {
        // `replacement` without `removed`: a name no kernel ever had (schema/README.md).
        let message = format!("{key} does not exist on any kernel: {}", spec.caveat);
        out.push(b.finding(Severity::Error, "unknown-key", message, help, spec.sources));
        return false;
    }
    if let Some(removed) = spec.removed.filter(|v| target.kernel >= *v) {
        let message = format!(
            "{key} does not exist on kernel {} (removed in {removed}): {}",
            target.kernel, spec.caveat
        );
        out.push(b.finding(
            Severity::Error,
            "key-removed",
            message,
            help.or(Some(format!("remove {key}"))),
            spec.sources,
        ));
        return false;
    }
    if let Some(added) = spec.added.filter(|v| target.kernel < *v) {
        let message = format!(
            "{key} does not exist yet on kernel {} (added in {added})",
            target.kernel
        );
        out.push(b.finding(
            Severity::Error,
            "key-not-yet-added",
            message,
            help,
            spec.sources,
        ));
        return false;
    }
    true
}

/// Checks a value against a key's shape; the message says what was expected.
pub fn check_shape(spec: &KeySpec, value: &Value) -> Result<(), String> {
    let tokens = value.tokens();
    let ints = |n: usize| -> Result<(), String> {
        if tokens.len() != n {
            return Err(format!(
                "expected {n} integer(s), got {} value(s) {:?}",
                tokens.len(),
                value.to_string()
            ));
        }
        match tokens.iter().find(|t| parse_decimal(t).is_none()) {
            Some(bad) => Err(format!("{bad:?} is not an integer")),
            None => Ok(()),
        }
    };
    match spec.shape {
        Shape::Int => ints(1),
        Shape::Bool => ints(1).and_then(|_| match value.as_int() {
            Some(0 | 1) => Ok(()),
            _ => Err(format!("expected 0 or 1, got {value}")),
        }),
        Shape::Enum => ints(1).and_then(|_| {
            let n = value.as_int().unwrap_or_default();
            if spec.values.is_empty() || spec.value_ids().any(|k| i128::from(k) == n) {
                Ok(())
            } else {
                Err(format!(
                    "{n} is not one of {:?}",
                    spec.value_ids().collect::<Vec<_>>()
                ))
            }
        }),
        Shape::Tuple => ints(spec.len.unwrap_or(tokens.len())),
        Shape::PortRange => ints(2),
        Shape::PortList => match tokens {
            [] => Ok(()),
            [one] if parse_port_list(one).is_some_and(|r| r.iter().all(|&(_, h)| h <= 65535)) => {
                Ok(())
            }
            _ => Err(format!(
                "expected a comma list of ports and ranges like 8080,9000-9010, got {value:?}",
                value = value.to_string()
            )),
        },
        Shape::String => match tokens {
            [_] => Ok(()),
            _ => Err(format!("expected one word, got {:?}", value.to_string())),
        },
        Shape::WordList => Ok(()),
    }
}

fn shape_help(spec: &KeySpec) -> Option<String> {
    Some(match spec.shape {
        Shape::Tuple => format!(
            "write {} integers as a list, e.g. [4096, 131072, 6291456]",
            spec.len.unwrap_or(2)
        ),
        Shape::PortRange => "write the range as a list [low, high]".into(),
        Shape::Enum => spec
            .values
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join("; "),
        Shape::Bool => "write 0 or 1".into(),
        _ => return None,
    })
}

/// The largest `CONFIG_HZ` Linux offers: a seconds-to-jiffies value within `INT_MAX / 1000`
/// suits every kernel.
const STRICTEST_HZ: u32 = 1000;

fn check_bounds(
    b: &FindingBuilder,
    spec: &KeySpec,
    value: &Value,
    hz: Option<u32>,
    out: &mut Vec<Finding>,
) {
    let numbers: Vec<i128> = value
        .tokens()
        .iter()
        .filter_map(|t| parse_decimal(t))
        .collect();
    let key = b.setting.map(|s| s.key.to_string()).unwrap_or_default();
    if let Some(bounds) = spec.kernel_bounds_at(hz) {
        if let Some(n) = numbers.iter().find(|n| !bounds.contains(**n)) {
            let at = match (spec.hz.is_some(), hz) {
                (true, Some(hz)) => format!(" at CONFIG_HZ={hz}"),
                (true, None) => " on any kernel (INT_MAX / HZ at the smallest HZ, 100)".into(),
                (false, _) => String::new(),
            };
            let message = format!(
                "{key}: {n} is outside the kernel's accepted range {bounds}{at}; the write would fail with EINVAL"
            );
            out.push(b.finding(
                Severity::Error,
                "kernel-bounds",
                message,
                None,
                spec.sources,
            ));
            return;
        }
    }
    if let (Some(strict), None) = (
        spec.kernel_bounds_at(Some(STRICTEST_HZ)),
        hz.filter(|_| spec.hz.is_some()),
    ) {
        if let Some(n) = numbers
            .iter()
            .find(|n| spec.hz.is_some() && !strict.contains(**n))
        {
            let limit = i128::from(i32::MAX);
            let from = (limit / n.abs().max(1)) + 1;
            let message = format!(
                "{key}: {n} seconds become more jiffies than an int holds when CONFIG_HZ is {from} or more (Debian and most distributions build with 250); such a kernel refuses it"
            );
            let help = Some(format!("stay within {strict} to suit every HZ"));
            out.push(b.finding(
                Severity::Warning,
                "kernel-bounds-hz",
                message,
                help,
                spec.sources,
            ));
            return;
        }
    }
    if let Some(bounds) = spec.recommended {
        let non_negative = bounds.min.is_some_and(|min| min >= 0);
        if let Some(n) = numbers.iter().find(|n| non_negative && **n < 0) {
            let unit = spec.unit.map(|u| format!(" ({u})")).unwrap_or_default();
            let message = format!(
                "{key}: {n} is negative, but the value is a quantity{unit} whose sane range is {bounds}"
            );
            let help = Some("write a value in the recommended range; check the key's caveat with `sysprof explain`".into());
            out.push(b.finding(
                Severity::Error,
                "negative-value",
                message,
                help,
                spec.sources,
            ));
            return;
        }
        if let Some(n) = numbers.iter().find(|n| !bounds.contains(**n)) {
            let message = format!(
                "{key}: {n} is outside the recommended range {bounds}: {}",
                spec.caveat
            );
            out.push(b.finding(
                Severity::Warning,
                "recommended-bounds",
                message,
                None,
                spec.sources,
            ));
        }
    }
}

fn check_noop_and_default(
    b: &FindingBuilder,
    spec: &KeySpec,
    setting: &Setting,
    target: &Target,
    out: &mut Vec<Finding>,
) {
    if let Some(since) = spec.noop_since.filter(|v| target.kernel >= *v) {
        let message = format!(
            "{} has no effect since kernel {since}: {}",
            setting.key, spec.caveat
        );
        out.push(b.finding(
            Severity::Warning,
            "noop-key",
            message,
            Some(format!("remove {}", setting.key)),
            spec.sources,
        ));
        return;
    }
    if spec
        .default_for(target.kernel)
        .is_some_and(|d| d.same_as(&setting.value))
    {
        let message = format!(
            "{} = {} is already the kernel default on {}",
            setting.key, setting.value, target.kernel
        );
        let help =
            "keep it only to pin the value against other sysctl.d files; say so in `reason`".into();
        out.push(b.finding(
            Severity::Info,
            "default-value",
            message,
            Some(help),
            spec.sources,
        ));
    }
}

fn check_pod(b: &FindingBuilder, spec: &KeySpec, target: &Target, out: &mut Vec<Finding>) {
    let key = b.setting.map(|s| s.key.to_string()).unwrap_or_default();
    let namespaced = matches!(spec.scope, Scope::Netns | Scope::Ipc);
    let ro_since = spec.ro_in_child_since.is_some_and(|v| target.kernel >= v);
    if !namespaced || ro_since || matches!(spec.k8s.as_ref().map(|k| k.class), Some(K8sClass::Node))
    {
        let scope = match spec.scope {
            Scope::RoInChild => "read-only in a pod's network namespace",
            Scope::InitOnly => "absent from a pod's network namespace",
            _ => "not namespaced: it would change the whole node",
        };
        let message = format!("{key} cannot be set from a pod: it is {scope}");
        let help = "move it to a node profile (applied by a privileged DaemonSet)".into();
        out.push(b.finding(
            Severity::Error,
            "pod-not-namespaced",
            message,
            Some(help),
            spec.sources,
        ));
        return;
    }
    let safe = spec.k8s.as_ref().filter(|k| k.class == K8sClass::Safe);
    let safe_on_target = safe.is_some_and(|k| match (k.since, target.k8s) {
        (Some(since), Some(k8s)) => k8s >= since,
        _ => true,
    });
    let kernel_ok = safe
        .and_then(|k| k.min_kernel)
        .is_none_or(|v| target.kernel >= v);
    if !(safe_on_target && kernel_ok) {
        let why = match safe {
            Some(k) if !kernel_ok => format!(
                "safe only on node kernels >= {}",
                k.min_kernel.map(|v| v.to_string()).unwrap_or_default()
            ),
            Some(k) => format!(
                "on the safe list only since Kubernetes {}",
                k.since.map(|v| v.to_string()).unwrap_or_default()
            ),
            None => "namespaced but not on the kubelet's safe list".into(),
        };
        let message =
            format!("{key} is {why}: pods using it are rejected unless the kubelet allows it");
        let help = format!("add to the kubelet configuration: allowedUnsafeSysctls: [\"{key}\"]");
        out.push(b.finding(
            Severity::Warning,
            "pod-unsafe-sysctl",
            message,
            Some(help),
            spec.sources,
        ));
    }
}
