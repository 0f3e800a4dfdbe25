//! Validation: judges a resolved profile against the schema for a target kernel.
//!
//! Per-key checks (known key, existence on the target kernel, shape, kernel and recommended
//! bounds, no-op keys, pointless defaults, pod scope) live here; cross-key and context rules
//! live in `rules`. The output is a [`Report`] of [`Finding`]s; nothing here touches the kernel
//! or prints.

use crate::profile::key::SysctlKey;
use crate::profile::value::{Value, parse_decimal, parse_port_list};
use crate::profile::{PatternSetting, Profile, Setting};
use crate::schema::finding::{Finding, FindingBuilder, Report, Target};
use crate::schema::rules;
use crate::schema::{K8sClass, KeySpec, Presence, Schema, Scope, Severity, Shape};

/// Whether a key exists on the target: `Some` when a live tree can be asked (the running
/// kernel, `--root`, `--netns`), `None` offline (`--kernel X`), where the catalogue decides.
pub type Exists<'a> = &'a dyn Fn(&SysctlKey) -> Option<bool>;

/// Validates a profile offline: per-key checks, then rules, sorted by position.
pub fn validate(profile: &Profile, schema: &Schema, target: &Target) -> Report {
    validate_live(profile, schema, target, &|_| None)
}

/// Validates a profile against the catalogue and, where `exists` can tell, the target itself:
/// the kernel is the authority on which keys exist, the catalogue on what they mean.
pub fn validate_live(
    profile: &Profile,
    schema: &Schema,
    target: &Target,
    exists: Exists,
) -> Report {
    let mut findings = Vec::new();
    for setting in profile.settings.values() {
        check_setting(setting, profile, schema, target, exists, &mut findings);
    }
    findings.extend(profile.unmatched.iter().map(unmatched_pattern));
    rules::evaluate(profile, schema, target, &mut findings);
    drop_generic_duplicates(&mut findings);
    findings.sort_by(|a, b| {
        let pos = |f: &Finding| f.at.as_ref().map(|l| (l.file.clone(), l.line, l.col));
        pos(a).cmp(&pos(b)).then(b.severity.cmp(&a.severity))
    });
    Report { findings }
}

/// A pattern key that matched no key of the target sets nothing (as in sysctl.d, silently;
/// here it is said).
fn unmatched_pattern(pattern: &PatternSetting) -> Finding {
    Finding {
        severity: Severity::Warning,
        rule: "pattern-matches-nothing".into(),
        key: None,
        at: Some(pattern.entry.at.clone()),
        message: format!(
            "{} matches no key of the target: it sets nothing here",
            pattern.glob
        ),
        help: Some("check the pattern against `sysctl -a` of the target, or drop it".into()),
        sources: vec!["sysctl.d(5)".into()],
    }
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
    exists: Exists,
    out: &mut Vec<Finding>,
) {
    let b = FindingBuilder {
        setting: Some(setting),
        key: None,
    };
    let live = exists(&setting.key);
    let Some(spec) = schema.lookup(&setting.key) else {
        return uncatalogued(&b, setting, schema, target, live, out);
    };
    if !check_existence(&b, spec, target, live, setting.optional, out) {
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
    if !check_writable_state(&b, spec, setting, out) {
        return;
    }
    check_bounds(&b, spec, &setting.value, target, out);
    check_one_way(&b, spec, setting, out);
    check_noop_and_default(&b, spec, setting, target, out);
    if profile.fact("kubernetes_pod") {
        check_pod(&b, spec, target, out);
    }
}

/// Removed / not-yet-added keys; returns false when further checks are pointless.
/// A key the catalogue does not describe. Where the target can be asked, the kernel decides:
/// present, it is a warning (`uncatalogued-key`: apply writes it, the kernel's own checks guard
/// it; an error with `--strict`); absent, an error naming the closest known key (a note for an
/// optional key). Offline, a close catalogued name makes it a likely typo (an error), anything
/// else a warning that it cannot be checked.
fn uncatalogued(
    b: &FindingBuilder,
    setting: &Setting,
    schema: &Schema,
    target: &Target,
    live: Option<bool>,
    out: &mut Vec<Finding>,
) {
    let key = &setting.key;
    let suggestion = schema.suggest(key).map(|s| format!("did you mean `{s}`?"));
    let sources = rules::sources("unknown-key");
    let (severity, rule, message, help) = match live {
        Some(false) if setting.optional => (
            Severity::Info,
            "optional-absent",
            format!("{key} does not exist here and is not catalogued; optional, so apply skips it"),
            suggestion,
        ),
        Some(false) => (
            Severity::Error,
            "unknown-key",
            format!("{key} is not a known sysctl, and this kernel (or namespace) does not have it"),
            suggestion.or(Some(
                "check the name; mark it `optional: true` if it exists only on some hosts".into(),
            )),
        ),
        None if suggestion.is_some() => (
            Severity::Error,
            "unknown-key",
            format!("{key} is not a known sysctl"),
            suggestion,
        ),
        _ => {
            let strict = if target.strict {
                Severity::Error
            } else {
                Severity::Warning
            };
            let checked = match live {
                Some(true) => {
                    "it exists here; apply writes it and the kernel's own checks guard the value"
                }
                _ => "it cannot be checked offline; the target kernel decides when it is applied",
            };
            let message = format!("{key} is not in sysprof's catalogue: {checked}");
            let help = Some("describe it in a schema dir (--schema) to have it validated; --strict refuses uncatalogued keys".into());
            (strict, "uncatalogued-key", message, help)
        }
    };
    out.push(b.finding(severity, rule, message, help, &sources));
}

/// Whether a catalogued key exists on the target: the live tree when it can tell (the kernel
/// wins over the catalogue's version data), else the catalogue's presence for the kernel.
fn check_existence(
    b: &FindingBuilder,
    spec: &KeySpec,
    target: &Target,
    live: Option<bool>,
    optional: bool,
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
    if live == Some(true) {
        return true;
    }
    let absent = |rule: &str, message: String, help: Option<String>| {
        let (severity, rule) = match optional {
            true => (Severity::Info, "optional-absent"),
            false => (Severity::Error, rule),
        };
        b.finding(severity, rule, message, help, spec.sources)
    };
    if let Some(removed) = spec.removed.filter(|v| target.kernel >= *v) {
        let message = format!(
            "{key} does not exist on kernel {} (removed in {removed}): {}",
            target.kernel, spec.caveat
        );
        out.push(absent(
            "key-removed",
            message,
            help.or(Some(format!("remove {key}"))),
        ));
        return false;
    }
    if let Some(added) = spec.added.filter(|v| target.kernel < *v) {
        let message = format!(
            "{key} does not exist yet on kernel {} (added in {added})",
            target.kernel
        );
        out.push(absent("key-not-yet-added", message, help));
        return false;
    }
    match (live, spec.presence_on(target.kernel)) {
        (Some(false), _) => {
            let why = match (target.child_netns, spec.scope) {
                (true, Scope::InitOnly) => {
                    "it exists only in the host's network namespace".to_owned()
                }
                _ => "a module may be missing, or the kernel was built without it".to_owned(),
            };
            let message = format!("{key} does not exist here: {why}");
            out.push(absent(
                "key-absent",
                message,
                Some("mark it `optional: true` if only some hosts have it".into()),
            ));
            false
        }
        (None, Presence::Absent) => {
            let message = format!(
                "{key} does not exist on kernel {} (the releases sysprof covers say so)",
                target.kernel
            );
            out.push(absent("key-absent", message, help));
            false
        }
        (None, Presence::Unknown) => {
            let message = format!(
                "whether kernel {} has {key} is not known (it lies between or below the releases sysprof covers); the kernel decides when it is applied",
                target.kernel
            );
            out.push(b.finding(
                Severity::Info,
                "key-presence-unknown",
                message,
                None,
                spec.sources,
            ));
            true
        }
        _ => true,
    }
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
        Shape::String if takes_any_text(spec) => match value.to_string().contains('\n') {
            false => Ok(()),
            true => Err("expected one line of text".into()),
        },
        Shape::String => match tokens {
            [_] => Ok(()),
            _ => Err(format!("expected one word, got {:?}", value.to_string())),
        },
        Shape::WordList => Ok(()),
    }
}

/// Whether a string key's handler stores the text as written, spaces included (the generic
/// string handlers: `kernel.core_pattern = |/usr/lib/systemd/systemd-coredump %P %u`); the
/// others parse a name and take one word.
fn takes_any_text(spec: &KeySpec) -> bool {
    const TEXT_HANDLERS: &[&str] = &[
        "proc_dostring",
        "proc_dostring_coredump",
        "proc_do_uts_string",
    ];
    spec.handler.is_some_and(|h| TEXT_HANDLERS.contains(&h))
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
    target: &Target,
    out: &mut Vec<Finding>,
) {
    let hz = target.hz;
    let numbers: Vec<i128> = value
        .tokens()
        .iter()
        .filter_map(|t| parse_decimal(t))
        .collect();
    let key = b.setting.map(|s| s.key.to_string()).unwrap_or_default();
    if let Some(bounds) = spec.kernel_bounds_for(target.kernel, hz) {
        if let Some(n) = numbers.iter().find(|n| !bounds.contains(**n)) {
            let at = match (spec.hz.is_some(), hz) {
                (true, Some(hz)) => format!(" at CONFIG_HZ={hz}"),
                (true, None) => " on any kernel (INT_MAX / HZ at the smallest HZ, 100)".into(),
                (false, _) => String::new(),
            };
            let outcome = match *n < 0 && spec.negative_ignored_on(target.kernel) {
                true => format!(
                    "kernel {} accepts the write but ignores it (the value stays as it was)",
                    target.kernel
                ),
                false => "the write would fail with EINVAL".to_owned(),
            };
            let message = format!(
                "{key}: {n} is outside the kernel's accepted range {bounds}{at}; {outcome}"
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
        spec.kernel_bounds_for(target.kernel, Some(STRICTEST_HZ)),
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

/// A read-only key cannot be set, and a trigger (an action such as `vm.drop_caches`) holds no
/// state a profile could declare or rollback restore; returns false for either.
fn check_writable_state(
    b: &FindingBuilder,
    spec: &KeySpec,
    setting: &Setting,
    out: &mut Vec<Finding>,
) -> bool {
    let (rule, what, help) = if spec.read_only {
        (
            "read-only-key",
            "is read-only: the kernel reports it, no write can set it",
            format!("remove {}", setting.key),
        )
    } else if spec.trigger {
        (
            "trigger-key",
            "is a trigger: writing it performs an action once, it holds no state to declare or roll back",
            format!(
                "remove {} and run the action itself where it is needed (`sysctl -w`)",
                setting.key
            ),
        )
    } else {
        return true;
    };
    let message = format!("{} {what}", setting.key);
    out.push(b.finding(Severity::Error, rule, message, Some(help), spec.sources));
    false
}

/// A value the kernel never lets go back from until reboot (kernel.modules_disabled=1): apply
/// refuses it unless `--allow-irreversible`, and rollback cannot restore it.
fn check_one_way(b: &FindingBuilder, spec: &KeySpec, setting: &Setting, out: &mut Vec<Finding>) {
    let (Some(one_way), Some(to)) = (spec.one_way, setting.value.as_int()) else {
        return;
    };
    let from = spec.default.as_ref().and_then(|d| d.to_value().as_int());
    if !one_way.irreversible(from, to) {
        return;
    }
    let message = format!(
        "{} = {} cannot be undone until reboot: {}",
        setting.key, setting.value, one_way.note
    );
    let help =
        "apply refuses it without --allow-irreversible; rollback will leave it in place".into();
    out.push(b.finding(
        Severity::Warning,
        "one-way-key",
        message,
        Some(help),
        spec.sources,
    ));
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
    let components: &[String] = b.setting.map(|s| s.key.components()).unwrap_or_default();
    let scope = spec.scope_of(components, target.kernel);
    let namespaced = matches!(scope, Scope::Netns | Scope::Ipc);
    if !namespaced || matches!(spec.k8s.as_ref().map(|k| k.class), Some(K8sClass::Node)) {
        let scope = match scope {
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
