//! Cohorts and stages: which hosts change first.
//!
//! A profile's `rollout` section lists stages, each with the share of the fleet it covers and an
//! optional watch (soak) time:
//!
//! ```yaml
//! rollout:
//!   stages:
//!     - {name: canary, percent: 1, watch: 10m}
//!     - {name: early, percent: 10, watch: 30m}
//!     - {name: fleet, percent: 100, watch: 10m}
//! ```
//!
//! Every host computes its cohort on its own, with no coordinator: the first 8 bytes of
//! `sha256(fingerprint ‖ host id)` (the profile's 64-hex-digit fingerprint, then the host id's
//! bytes) read as a big-endian integer and scaled to [0, 100). A host is in a stage when its
//! cohort is below the stage's percent; percents never decrease, so a host in the canary is in
//! every later stage. A new profile version reshuffles cohorts, so the same hosts are not always
//! first. This module computes; reading `/etc/machine-id` and printing are the command's job.

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::profile::rollout::{RolloutSpec, Stage};
use crate::profile::section;

/// The host's cohort in [0, 100) for a profile fingerprint.
pub fn cohort(fingerprint: &str, host_id: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(fingerprint.as_bytes());
    hasher.update(host_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) as f64 / 18_446_744_073_709_551_616.0 * 100.0
}

/// Whether a cohort is inside a stage.
pub fn in_stage(cohort: f64, stage: &Stage) -> bool {
    cohort < stage.percent
}

/// Where one host lands.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    /// The host's name in the hosts file.
    pub host: String,
    /// The id its cohort is computed from.
    pub host_id: String,
    /// Its cohort in [0, 100).
    pub cohort: f64,
    /// The first stage it is in (None: in no stage).
    pub stage: Option<String>,
}

/// One stage of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct StagePlan {
    /// The stage.
    pub name: String,
    /// Its percent.
    pub percent: f64,
    /// Its watch time in seconds.
    #[serde(serialize_with = "section::opt_secs")]
    pub watch: Option<Duration>,
    /// Hosts that change first in this stage.
    pub new_hosts: Vec<String>,
    /// Hosts changed once this stage is done (cumulative).
    pub total: usize,
}

/// Which hosts land in which stage.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutPlan {
    /// The profile fingerprint cohorts are computed from.
    pub fingerprint: String,
    /// Stages in order.
    pub stages: Vec<StagePlan>,
    /// Every host, in the order given.
    pub hosts: Vec<Placement>,
    /// What looks wrong with the staging for these hosts (a stage no host lands in).
    pub warnings: Vec<String>,
}

impl RolloutPlan {
    /// One warning per stage before the last that gets no new host: the change skips it, so
    /// the next stage with hosts is the real canary (with `n` hosts, a stage of `p`% holds
    /// about `n·p/100` of them).
    fn empty_stage_warnings(&self) -> Vec<String> {
        let hosts = self.hosts.len();
        let mut out = Vec::new();
        for (i, stage) in self.stages.iter().enumerate() {
            if !stage.new_hosts.is_empty() || hosts == 0 {
                continue;
            }
            let next = self.stages[i + 1..]
                .iter()
                .find(|s| !s.new_hosts.is_empty());
            let then = match next {
                Some(next) => format!(
                    "the first host(s) to change after it are the {} of stage {}",
                    next.new_hosts.len(),
                    next.name
                ),
                None => "no later stage changes a host either".to_owned(),
            };
            out.push(format!(
                "stage {} ({}% of {hosts} host(s)) gets no host: {then}; raise its percent or give the stage more hosts",
                stage.name, stage.percent
            ));
        }
        out
    }
}

/// Places hosts (name, host id) into stages.
pub fn plan(spec: &RolloutSpec, fingerprint: &str, hosts: &[(String, String)]) -> RolloutPlan {
    let placements: Vec<Placement> = hosts
        .iter()
        .map(|(host, id)| {
            let c = cohort(fingerprint, id);
            Placement {
                host: host.clone(),
                host_id: id.clone(),
                cohort: c,
                stage: spec.first_stage(c).map(|s| s.name.clone()),
            }
        })
        .collect();
    let stages = spec
        .stages
        .iter()
        .map(|s| StagePlan {
            name: s.name.clone(),
            percent: s.percent,
            watch: s.watch,
            new_hosts: placements
                .iter()
                .filter(|p| p.stage.as_deref() == Some(s.name.as_str()))
                .map(|p| p.host.clone())
                .collect(),
            total: placements.iter().filter(|p| in_stage(p.cohort, s)).count(),
        })
        .collect();
    let mut plan = RolloutPlan {
        fingerprint: fingerprint.to_owned(),
        stages,
        hosts: placements,
        warnings: Vec::new(),
    };
    plan.warnings = plan.empty_stage_warnings();
    plan
}

/// Parses a hosts file: one host per line, `NAME [HOST_ID]` (the id defaults to the name),
/// `#` comments and blank lines ignored. Errors name the line.
pub fn parse_hosts(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut hosts: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        let (name, id) = match words.as_slice() {
            [] => continue,
            [name] => (*name, *name),
            [name, id] => (*name, *id),
            _ => {
                return Err(format!(
                    "line {}: expected `NAME [HOST_ID]`, got {line:?}",
                    i + 1
                ));
            }
        };
        if hosts.iter().any(|(n, _)| n == name) {
            return Err(format!("line {}: host {name:?} is listed twice", i + 1));
        }
        hosts.push((name.to_owned(), id.to_owned()));
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;

    fn spec(text: &str) -> Result<RolloutSpec> {
        let node = crate::profile::yaml::parse(text).unwrap().unwrap();
        RolloutSpec::parse(&node, &"p.yaml".into())
    }

    const STAGES: &str = "stages:\n  - {name: canary, percent: 1, watch: 10m}\n  - {name: early, percent: 10}\n  - {name: fleet, percent: 100, watch: 1m}\n";

    #[test]
    fn cohorts_are_deterministic_spread_and_in_range() {
        let fp = "a".repeat(64);
        assert_eq!(cohort(&fp, "host-1"), cohort(&fp, "host-1"));
        assert_ne!(cohort(&fp, "host-1"), cohort(&fp, "host-2"));
        assert_ne!(cohort(&fp, "host-1"), cohort(&"b".repeat(64), "host-1"));
        let cohorts: Vec<f64> = (0..2000).map(|i| cohort(&fp, &format!("h{i}"))).collect();
        assert!(cohorts.iter().all(|c| (0.0..100.0).contains(c)));
        let below_ten = cohorts.iter().filter(|c| **c < 10.0).count();
        assert!(
            (120..280).contains(&below_ten),
            "about 10% of 2000, got {below_ten}"
        );
    }

    #[test]
    fn stages_are_monotonic_so_early_hosts_stay_in() {
        let spec = spec(STAGES).unwrap();
        let hosts: Vec<(String, String)> = (0..500)
            .map(|i| (format!("h{i}"), format!("id{i}")))
            .collect();
        let plan = plan(&spec, &"c".repeat(64), &hosts);
        let totals: Vec<usize> = plan.stages.iter().map(|s| s.total).collect();
        assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
        assert_eq!(totals[2], 500, "fleet is 100%");
        let new: usize = plan.stages.iter().map(|s| s.new_hosts.len()).sum();
        assert_eq!(new, 500, "every host lands in exactly one first stage");
        for p in &plan.hosts {
            let first = spec
                .stages
                .iter()
                .position(|s| Some(&s.name) == p.stage.as_ref())
                .unwrap();
            assert!(spec.stages[first..].iter().all(|s| in_stage(p.cohort, s)));
        }
        assert_eq!(spec.stages[0].watch, Some(Duration::from_secs(600)));
    }

    #[test]
    fn bad_sections_name_the_place() {
        for (text, expected) in [
            (
                "stages:\n  - {name: a, percent: 50}\n  - {name: b, percent: 10}\n",
                "p.yaml:3:5: stage `b` covers 10%",
            ),
            (
                "stages:\n  - {name: a, percent: 5}\n  - {name: a, percent: 10}\n",
                "p.yaml:3:5: stage `a` is listed twice",
            ),
            (
                "stages:\n  - {name: a, percent: 0}\n",
                "p.yaml:2:24: `percent` must be above 0",
            ),
            (
                "stages:\n  - {name: a, percent: 101}\n",
                "must be above 0 and at most 100",
            ),
            (
                "stages:\n  - {percent: 10}\n",
                "p.yaml:2:5: a stage needs `name`",
            ),
            (
                "stages:\n  - {name: a, percent: 1, soak: 5m}\n",
                "p.yaml:2:27: unknown stage field `soak`",
            ),
            (
                "stages:\n  - {name: a, percent: 1, watch: forever}\n",
                "`watch`: \"forever\" is not a duration",
            ),
            ("stage: []\n", "p.yaml:1:1: unknown rollout field `stage`"),
            ("stages: []\n", "`stages` is empty"),
        ] {
            let err = spec(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let err = spec(STAGES).unwrap().stage("erly").unwrap_err();
        assert!(err.help().unwrap().contains("did you mean `early`"));
    }

    #[test]
    fn hosts_files_take_names_and_optional_ids() {
        let hosts = parse_hosts("# fleet\nweb1\nweb2 0f3e  # comment\n\n").unwrap();
        assert_eq!(
            hosts,
            [
                ("web1".into(), "web1".into()),
                ("web2".into(), "0f3e".into())
            ]
        );
        assert!(parse_hosts("a\na\n").unwrap_err().contains("line 2"));
        assert!(parse_hosts("a b c\n").unwrap_err().contains("line 1"));
    }
}
