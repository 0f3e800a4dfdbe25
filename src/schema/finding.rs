//! What validation produces: the [`Target`] a profile is judged for, [`Finding`]s and the
//! [`Report`] that collects them. Per-key checks (`validate`) and cross-key rules (`rules`) both
//! build findings with a [`FindingBuilder`]; neither module needs the other's internals.

use crate::profile::key::SysctlKey;
use crate::profile::{Location, Profile, Setting};
use crate::schema::{Severity, Version};

/// What a profile is validated for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    /// Kernel version (running kernel, or `--kernel`).
    pub kernel: Version,
    /// Kubernetes version (`--k8s`, or the profile's `context.k8s_version`).
    pub k8s: Option<Version>,
    /// Physical memory in bytes, when known (for tcp_mem).
    pub mem_bytes: Option<u64>,
    /// Page size in bytes.
    pub page_size: u64,
    /// Whether the profile is applied inside a child network namespace (`--netns`).
    pub child_netns: bool,
    /// The target kernel's `CONFIG_HZ`, when known (the running kernel's build configuration):
    /// seconds-to-jiffies keys are bounded by `INT_MAX / HZ`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hz: Option<u32>,
    /// `--strict`: a key the catalogue does not describe is an error, not a warning.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

impl Target {
    /// This target for a profile: `--k8s` wins, else the profile's `context.k8s_version`.
    pub fn for_profile(&self, profile: &Profile) -> Target {
        let mut target = self.clone();
        target.k8s = target.k8s.or_else(|| {
            profile
                .fact_text("k8s_version")
                .and_then(|v| v.parse().ok())
        });
        target
    }
}

/// One problem or remark about a profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The rule id.
    pub rule: String,
    /// The key concerned.
    pub key: Option<SysctlKey>,
    /// Where in the profile.
    pub at: Option<Location>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Where the rule comes from.
    pub sources: Vec<String>,
}

/// All findings for one profile, in profile order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Number of findings of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// Whether the profile must not be applied (errors, or warnings when denied).
    pub fn blocks(&self, deny_warnings: bool) -> bool {
        self.count(Severity::Error) > 0 || (deny_warnings && self.count(Severity::Warning) > 0)
    }
}

/// Builds findings for one setting; used by per-key checks and rules alike.
pub struct FindingBuilder<'a> {
    /// The setting the finding is about, if any.
    pub setting: Option<&'a Setting>,
    /// The key when there is no setting.
    pub key: Option<SysctlKey>,
}

impl FindingBuilder<'_> {
    /// Makes a finding pointing at the setting's key.
    pub fn finding(
        &self,
        severity: Severity,
        rule: &str,
        message: String,
        help: Option<String>,
        sources: &[impl AsRef<str>],
    ) -> Finding {
        Finding {
            severity,
            rule: rule.to_owned(),
            key: self
                .setting
                .map(|s| s.key.clone())
                .or_else(|| self.key.clone()),
            at: self.setting.map(|s| s.at.clone()),
            message: crate::error::shorten_to(&message, crate::error::MAX_MESSAGE),
            help,
            sources: sources.iter().map(|s| s.as_ref().to_owned()).collect(),
        }
    }
}
