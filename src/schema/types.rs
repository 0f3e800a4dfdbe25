//! The schema's data types, shared with `build.rs` (through `#[path]`), which writes the embedded
//! schema as `static` items of exactly these types. Hence no `crate::` imports here, and only what
//! a `static` can hold: `&'static str`, `&'static [T]`, `Option`, plain enums and `Copy` structs.
//!
//! `--schema DIR` deserialises YAML into the same types at run time by leaking the owned data (the
//! [`leak`] helpers). A schema is loaded once per process and lives until exit, so nothing is lost
//! that would otherwise be freed. Serde treats a `&'static str` field as borrowed from the input,
//! so the derived impls are `Deserialize<'static>` and loaders leak the YAML text as well; the
//! strings are still copied out of it, because a folded or escaped scalar cannot be borrowed.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A kernel or Kubernetes version: major.minor[.patch], compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl FromStr for Version {
    type Err = String;

    /// Parses `6.18`, `6.18.44-fc-v445`, `v1.29.3`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim().trim_start_matches('v');
        let mut parts = text
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse::<u32>());
        let major = parts.next().and_then(|p| p.ok());
        let minor = parts.next().and_then(|p| p.ok());
        match (major, minor) {
            (Some(major), Some(minor)) => Ok(Version(
                major,
                minor,
                parts.next().and_then(|p| p.ok()).unwrap_or(0),
            )),
            _ => Err(format!("{text:?} is not a version like 6.1 or 5.15.0")),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.2 == 0 {
            write!(f, "{}.{}", self.0, self.1)
        } else {
            write!(f, "{}.{}.{}", self.0, self.1, self.2)
        }
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The shape of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// 0 or 1.
    Bool,
    /// One integer.
    Int,
    /// One integer from `values`.
    Enum,
    /// `len` integers.
    Tuple,
    /// Two ports, low and high.
    PortRange,
    /// Comma list of ports and ranges, possibly empty.
    PortList,
    /// One word.
    String,
    /// Space-separated words.
    WordList,
}

/// Inclusive integer bounds; a missing side is unchecked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Lowest allowed.
    pub min: Option<i128>,
    /// Highest allowed.
    pub max: Option<i128>,
}

impl Bounds {
    /// Whether `n` is within the bounds.
    pub fn contains(&self, n: i128) -> bool {
        self.min.is_none_or(|min| n >= min) && self.max.is_none_or(|max| n <= max)
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) => write!(f, "{a}..={b}"),
            (Some(a), None) => write!(f, ">= {a}"),
            (None, Some(b)) => write!(f, "<= {b}"),
            (None, None) => f.write_str("unbounded"),
        }
    }
}

/// Where a key lives relative to network namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Per network namespace, writable in a child.
    Netns,
    /// Visible but read-only in a child netns.
    RoInChild,
    /// Registered only in the initial netns.
    InitOnly,
    /// Not namespaced at all (vm, fs, most kernel).
    Global,
    /// Per IPC namespace.
    Ipc,
    /// Per UTS namespace (`kernel.hostname`, `kernel.domainname`).
    Uts,
    /// Per user namespace (the `user.*` ucount limits).
    User,
    /// Per PID namespace (`kernel.ns_last_pid`).
    Pid,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 8] = [
        Self::Netns,
        Self::RoInChild,
        Self::InitOnly,
        Self::Global,
        Self::Ipc,
        Self::Uts,
        Self::User,
        Self::Pid,
    ];

    /// The one spelling of the scope everywhere: the schema's, `explain`'s and JSON's
    /// (`netns`, `ro_in_child`, `init_only`, `global`, `ipc`, `uts`, `user`, `pid`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Netns => "netns",
            Self::RoInChild => "ro_in_child",
            Self::InitOnly => "init_only",
            Self::Global => "global",
            Self::Ipc => "ipc",
            Self::Uts => "uts",
            Self::User => "user",
            Self::Pid => "pid",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a handler converts the written number into jiffies, which makes the kernel's real bound
/// depend on `CONFIG_HZ` (see [`KeySpec::kernel_bounds_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HzKind {
    /// Seconds (`proc_dointvec_jiffies`): at most `INT_MAX / HZ` either way.
    Jiffies,
    /// 1/USER_HZ (1/100) seconds (`proc_dointvec_userhz_jiffies`).
    UserhzJiffies,
    /// Milliseconds (`proc_dointvec_ms_jiffies` and friends).
    MsJiffies,
}

/// Which writes of a one-way key cannot be undone until reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OneWayKind {
    /// Writing one of `values` locks the key there.
    ToValues,
    /// The value can only be raised.
    OnlyUp,
    /// The value can only be lowered.
    OnlyDown,
    /// Bits can be set but never cleared.
    BitsOnlySet,
    /// Bits can be cleared but never set again.
    BitsOnlyCleared,
}

/// A write that rollback cannot restore (until reboot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OneWay {
    /// What kind of writes are final.
    pub kind: OneWayKind,
    /// The values that lock the key (`to_values` only).
    #[serde(default, deserialize_with = "leak::list")]
    pub values: &'static [i64],
    /// What the kernel does, in one sentence.
    #[serde(deserialize_with = "leak::text")]
    pub note: &'static str,
}

impl OneWay {
    /// Whether going from `from` to `to` is a write that cannot be undone. Unknown (`None`)
    /// current values count as possibly irreversible.
    pub fn irreversible(&self, from: Option<i128>, to: i128) -> bool {
        match (self.kind, from) {
            (OneWayKind::ToValues, from) => {
                self.values.iter().any(|&v| i128::from(v) == to) && from != Some(to)
            }
            (OneWayKind::OnlyUp, Some(from)) => to > from,
            (OneWayKind::OnlyDown, Some(from)) => to < from,
            (OneWayKind::BitsOnlySet, Some(from)) => to & !from != 0,
            (OneWayKind::BitsOnlyCleared, Some(from)) => from & !to != 0,
            (_, None) => true,
        }
    }
}

/// Whether a key exists on a kernel version, as far as the schema knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// The key exists there.
    Present,
    /// The key does not exist there.
    Absent,
    /// The schema cannot tell (between covered releases that disagree, or below the oldest).
    Unknown,
}

/// Kubernetes classification of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum K8sClass {
    /// On the kubelet's safe list.
    Safe,
    /// Namespaced but not safe: needs kubelet `allowedUnsafeSysctls`.
    Unsafe,
    /// Cannot be set from a pod.
    Node,
}

/// Kubernetes facts about a key.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct K8s {
    /// Safe, unsafe or node-level.
    pub class: K8sClass,
    /// Kubernetes version that put it on the safe list.
    pub since: Option<Version>,
    /// Minimum node kernel for the kubelet to allow it.
    pub min_kernel: Option<Version>,
}

/// One scalar written in the schema: an element of a default, or the value a context fact is
/// compared with. Serialises like the YAML it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// An integer (any YAML integer up to 64 bits, signed or not).
    Int(i128),
    /// A float: never a valid sysctl value, kept so a default shows as written.
    Float(f64),
    /// A string.
    Str(&'static str),
}

/// A value written in the schema (a default): one scalar or a list of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Literal {
    /// A single scalar: `default: 60`.
    Scalar(Scalar),
    /// A list: `default: [32768, 60999]`.
    List(&'static [Scalar]),
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Scalar::Bool(b) => s.serialize_bool(b),
            Scalar::Int(n) => match (u64::try_from(n), i64::try_from(n)) {
                (Ok(n), _) => s.serialize_u64(n),
                (_, Ok(n)) => s.serialize_i64(n),
                _ => s.serialize_i128(n),
            },
            Scalar::Float(f) => s.serialize_f64(f),
            Scalar::Str(text) => s.serialize_str(text),
        }
    }
}

impl Serialize for Literal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Literal::Scalar(scalar) => scalar.serialize(s),
            Literal::List(items) => s.collect_seq(items.iter()),
        }
    }
}

/// Reads a [`Scalar`], or (with `lists`) a [`Literal`] that may be a list of scalars.
struct LiteralVisitor {
    lists: bool,
}

impl<'de> serde::de::Visitor<'de> for LiteralVisitor {
    type Value = Literal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.lists {
            true => "an integer, a string, a boolean or a list of them",
            false => "an integer, a string or a boolean",
        })
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Literal, E> {
        Ok(Literal::Scalar(Scalar::Bool(b)))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Literal, E> {
        Ok(Literal::Scalar(Scalar::Int(n.into())))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Literal, E> {
        Ok(Literal::Scalar(Scalar::Int(n.into())))
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Literal, E> {
        Ok(Literal::Scalar(Scalar::Float(f)))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Literal, E> {
        Ok(Literal::Scalar(Scalar::Str(text.to_owned().leak())))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Literal, A::Error> {
        if !self.lists {
            return Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &self,
            ));
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Scalar>()? {
            items.push(item);
        }
        Ok(Literal::List(items.leak()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(LiteralVisitor { lists: false })? {
            Literal::Scalar(scalar) => Ok(scalar),
            Literal::List(_) => Err(serde::de::Error::custom("expected a scalar")),
        }
    }
}

impl<'de> Deserialize<'de> for Literal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LiteralVisitor { lists: true })
    }
}

/// A default that applied to older kernels.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OlderDefault {
    /// Kernels older than this had `value`.
    pub before: Version,
    /// The old default.
    pub value: Literal,
}

/// A semantic change in some kernel version.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The first kernel with the change.
    pub since: Version,
    /// What changed.
    #[serde(deserialize_with = "leak::text")]
    pub note: &'static str,
}

/// The scope a key had on older kernels.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OlderScope {
    /// Kernels older than this had `scope`.
    pub before: Version,
    /// The old scope.
    pub scope: Scope,
}

/// The bounds a key's handler enforced on older kernels.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OlderBounds {
    /// Kernels older than this enforced these bounds.
    pub before: Version,
    /// Lowest accepted (`None`: unchecked).
    pub min: Option<i128>,
    /// Highest accepted (`None`: unchecked).
    pub max: Option<i128>,
    /// A negative number is accepted and ignored (the value stays as it was) instead of
    /// refused: `proc_doulongvec_minmax` before 6.1.
    #[serde(default, skip_serializing_if = "is_false")]
    pub negative_ignored: bool,
}

impl OlderBounds {
    /// The bounds, or `None` when neither side is checked.
    pub fn bounds(&self) -> Option<Bounds> {
        let bounds = Bounds {
            min: self.min,
            max: self.max,
        };
        (bounds != Bounds::default()).then_some(bounds)
    }
}

/// Everything the schema knows about one key or key pattern.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The dotted key or pattern.
    #[serde(deserialize_with = "leak::text")]
    pub key: &'static str,
    /// The value's shape.
    pub shape: Shape,
    /// Tuple length.
    pub len: Option<usize>,
    /// Enum values and their meaning, sorted by value (serialised as a map).
    #[serde(
        default,
        deserialize_with = "leak::values",
        serialize_with = "values_as_map"
    )]
    pub values: &'static [(i64, &'static str)],
    /// Unit of the value.
    #[serde(default, deserialize_with = "leak::opt_text")]
    pub unit: Option<&'static str>,
    /// Bounds the kernel enforces (EINVAL outside), on the newest covered kernels.
    pub kernel_bounds: Option<Bounds>,
    /// Bounds older kernels enforced (see [`KeySpec::kernel_bounds_on`]).
    #[serde(
        default,
        deserialize_with = "leak::list",
        skip_serializing_if = "<[_]>::is_empty"
    )]
    pub older_bounds: &'static [OlderBounds],
    /// Bounds that are sane (warning outside).
    pub recommended: Option<Bounds>,
    /// Compiled-in default on current kernels.
    pub default: Option<Literal>,
    /// How the kernel computes the default.
    #[serde(default, deserialize_with = "leak::opt_text")]
    pub default_note: Option<&'static str>,
    /// Defaults of older kernels.
    #[serde(default, deserialize_with = "leak::list")]
    pub older_defaults: &'static [OlderDefault],
    /// First kernel with the key.
    pub added: Option<Version>,
    /// First kernel without it.
    pub removed: Option<Version>,
    /// First kernel where it does nothing.
    pub noop_since: Option<Version>,
    /// Semantic changes.
    #[serde(default, deserialize_with = "leak::list")]
    pub changes: &'static [Change],
    /// What to use instead.
    #[serde(default, deserialize_with = "leak::opt_text")]
    pub replacement: Option<&'static str>,
    /// Namespace scope on the newest covered kernels.
    pub scope: Scope,
    /// Scopes of older kernels (see [`KeySpec::scope_on`]).
    #[serde(
        default,
        deserialize_with = "leak::list",
        skip_serializing_if = "<[_]>::is_empty"
    )]
    pub older_scopes: &'static [OlderScope],
    /// Scopes of particular instances of a pattern, by the name the `*` component takes
    /// (`default: init_only` for the neighbour tables' defaults), sorted by name.
    #[serde(
        default,
        deserialize_with = "leak::scopes",
        serialize_with = "scopes_as_map",
        skip_serializing_if = "<[_]>::is_empty"
    )]
    pub instance_scopes: &'static [(&'static str, Scope)],
    /// Since when a child netns sees it read-only.
    pub ro_in_child_since: Option<Version>,
    /// Since when it is per-netns.
    pub namespaced_since: Option<Version>,
    /// Kubernetes facts.
    pub k8s: Option<K8s>,
    /// The one sentence an operator must know.
    #[serde(deserialize_with = "leak::text")]
    pub caveat: &'static str,
    /// Where common advice is wrong.
    #[serde(default, deserialize_with = "leak::opt_text")]
    pub contradicts: Option<&'static str>,
    /// Where the facts come from.
    #[serde(deserialize_with = "leak::texts")]
    pub sources: &'static [&'static str],
    /// Nobody can write it (mode 0444): a counter or a view of kernel state.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// Writing performs an action instead of setting a state (`vm.drop_caches`): there is no
    /// value to restore.
    #[serde(default, skip_serializing_if = "is_false")]
    pub trigger: bool,
    /// Writes that cannot be undone until reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_way: Option<OneWay>,
    /// The handler converts to jiffies: the kernel's real bound depends on `CONFIG_HZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hz: Option<HzKind>,
    /// The covered kernel releases that have the key (generated entries).
    #[serde(
        default,
        deserialize_with = "leak::list",
        skip_serializing_if = "<[_]>::is_empty"
    )]
    pub kernels: &'static [Version],
    /// The kernel's proc_handler for the key (`proc_dointvec_minmax`).
    #[serde(
        default,
        deserialize_with = "leak::opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub handler: Option<&'static str>,
    /// Whether the entry comes from the generated catalogue (`catalogue.yaml`) rather than the
    /// curated `keys.yaml`. Set by the loader, never written in YAML.
    #[serde(skip_deserializing, skip_serializing_if = "is_false")]
    pub generated: bool,
    /// Every release the generated catalogue covers (the union of its `kernels`), shared by
    /// all entries of one schema. Set by the loader, never written in YAML.
    #[serde(skip)]
    pub covered: &'static [Version],
}

/// `skip_serializing_if` helper.
fn is_false(b: &bool) -> bool {
    !*b
}

impl KeySpec {
    /// The default written for `kernel`: the earliest `older_defaults` entry it predates, else
    /// `default`.
    pub fn default_literal(&self, kernel: Version) -> Option<Literal> {
        let older = self
            .older_defaults
            .iter()
            .filter(|d| kernel < d.before)
            .min_by_key(|d| d.before);
        older.map(|d| d.value).or(self.default)
    }

    /// Whether the key may exist on `kernel`: false only when the schema knows it is absent
    /// ([`Presence::Absent`]).
    pub fn exists_on(&self, kernel: Version) -> bool {
        self.presence_on(kernel) != Presence::Absent
    }

    /// Whether the key exists on `kernel`. Curated `added`/`removed` decide when given (and an
    /// entry without them nor `kernels` exists everywhere). Otherwise the `kernels` list and the
    /// covered releases decide, by the nearest covered release at or below `kernel` and the
    /// nearest at or above: both have the key → present, both lack it → absent, else unknown.
    /// Above the newest covered release the newest decides; below the oldest, a key the oldest
    /// has is unknown and one it lacks is absent.
    pub fn presence_on(&self, kernel: Version) -> Presence {
        let curated = |present: bool| match present {
            true => Presence::Present,
            false => Presence::Absent,
        };
        if self.added.is_some() || self.removed.is_some() || self.kernels.is_empty() {
            let present =
                self.added.is_none_or(|v| kernel >= v) && self.removed.is_none_or(|v| kernel < v);
            return curated(present);
        }
        let has = |v: &Version| self.kernels.contains(v);
        let below = self.covered.iter().filter(|v| **v <= kernel).max();
        let above = self.covered.iter().filter(|v| **v >= kernel).min();
        match (below.map(has), above.map(has)) {
            (Some(a), Some(b)) if a == b => curated(a),
            (Some(a), None) => curated(a),
            (None, Some(true)) => Presence::Unknown,
            (None, Some(false)) => Presence::Absent,
            (None, None) => curated(!self.kernels.is_empty()),
            _ => Presence::Unknown,
        }
    }

    /// The bounds the kernel enforces at a given `CONFIG_HZ` on the newest covered kernels:
    /// `kernel_bounds`, narrowed for handlers that convert seconds to jiffies
    /// (`|n| <= INT_MAX / HZ`). With HZ unknown the loosest such bound applies, that of the
    /// smallest HZ Linux offers (100): whatever the kernel's HZ, it refuses anything beyond. The
    /// other jiffies conversions are not a simple function of HZ and are left to the kernel.
    pub fn kernel_bounds_at(&self, hz: Option<u32>) -> Option<Bounds> {
        self.jiffies_narrowed(self.kernel_bounds, hz)
    }

    /// [`KeySpec::kernel_bounds_at`] for a given kernel version: the bounds of
    /// [`KeySpec::kernel_bounds_on`], narrowed for jiffies at `hz`.
    pub fn kernel_bounds_for(&self, kernel: Version, hz: Option<u32>) -> Option<Bounds> {
        self.jiffies_narrowed(self.kernel_bounds_on(kernel), hz)
    }

    /// The table's bounds on `kernel`: the earliest `older_bounds` entry it predates, else
    /// `kernel_bounds`.
    pub fn kernel_bounds_on(&self, kernel: Version) -> Option<Bounds> {
        match self.older_bounds_on(kernel) {
            Some(older) => older.bounds(),
            None => self.kernel_bounds,
        }
    }

    /// Whether `kernel` accepts and ignores a negative number instead of refusing it.
    pub fn negative_ignored_on(&self, kernel: Version) -> bool {
        self.older_bounds_on(kernel)
            .is_some_and(|older| older.negative_ignored)
    }

    fn older_bounds_on(&self, kernel: Version) -> Option<&OlderBounds> {
        let older = self.older_bounds.iter().filter(|b| kernel < b.before);
        older.min_by_key(|b| b.before)
    }

    fn jiffies_narrowed(&self, own: Option<Bounds>, hz: Option<u32>) -> Option<Bounds> {
        const SMALLEST_HZ: u32 = 100;
        match (self.hz, hz.unwrap_or(SMALLEST_HZ)) {
            (Some(HzKind::Jiffies), hz) if hz > 0 => {
                let limit = i128::from(i32::MAX) / i128::from(hz);
                let own = own.unwrap_or_default();
                Some(Bounds {
                    min: Some(own.min.map_or(-limit, |m| m.max(-limit))),
                    max: Some(own.max.map_or(limit, |m| m.min(limit))),
                })
            }
            _ => own,
        }
    }

    /// The key's scope on `kernel`: the earliest `older_scopes` entry it predates, else
    /// `scope`. A `ro_in_child` key with `ro_in_child_since` is writable in a child netns
    /// (`netns`) on kernels before that version.
    pub fn scope_on(&self, kernel: Version) -> Scope {
        let older = self.older_scopes.iter().filter(|s| kernel < s.before);
        match older.min_by_key(|s| s.before) {
            Some(older) => older.scope,
            None if self.scope == Scope::RoInChild
                && self.ro_in_child_since.is_some_and(|v| kernel < v) =>
            {
                Scope::Netns
            }
            None => self.scope,
        }
    }

    /// The scope of one concrete key this entry describes on `kernel`: an instance of a
    /// pattern named in `instance_scopes` (the `*` component's value) has its own, every other
    /// key [`KeySpec::scope_on`].
    pub fn scope_of(&self, key: &[impl AsRef<str>], kernel: Version) -> Scope {
        let pattern = self.key.split('.');
        let instances = pattern
            .zip(key)
            .filter(|(p, _)| *p == "*")
            .map(|(_, k)| k.as_ref());
        for instance in instances {
            if let Some((_, scope)) = self.instance_scopes.iter().find(|(i, _)| *i == instance) {
                return *scope;
            }
        }
        self.scope_on(kernel)
    }

    /// The enum values the key accepts, in ascending order.
    pub fn value_ids(&self) -> impl Iterator<Item = i64> + use<> {
        self.values.iter().map(|&(n, _)| n)
    }
}

/// Serialises `values` as the map it was written as (`{0: "disabled", ...}`).
fn values_as_map<S: Serializer>(
    values: &&'static [(i64, &'static str)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(values.iter().map(|(n, meaning)| (n, meaning)))
}

/// Serialises `instance_scopes` as the map it was written as (`{default: init_only}`).
fn scopes_as_map<S: Serializer>(
    scopes: &&'static [(&'static str, Scope)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(scopes.iter().map(|(instance, scope)| (instance, scope)))
}

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Probably wrong; fails only with `--deny-warnings`.
    Warning,
    /// Wrong; blocks apply.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// Comparison operators of rule conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// ==
    Eq,
    /// !=
    Ne,
    /// <
    Lt,
    /// <=
    Le,
    /// >
    Gt,
    /// >=
    Ge,
}

impl Op {
    /// Applies the operator.
    pub fn holds<T: Ord>(self, a: T, b: T) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

/// A version comparison such as `>= 4.12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VersionReq {
    /// The operator.
    pub op: Op,
    /// The version.
    pub version: Version,
}

impl<'de> Deserialize<'de> for VersionReq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(p, op)| text.strip_prefix(p).map(|rest| (*op, rest)))
            .ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?}: expected an operator such as >= 4.12"))
            })?;
        let version = rest.parse().map_err(serde::de::Error::custom)?;
        Ok(VersionReq { op, version })
    }
}

/// One condition of a data rule (see `schema/README.md`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Condition {
    /// The profile sets the key.
    Set {
        /// The key.
        #[serde(deserialize_with = "leak::text")]
        set: &'static str,
    },
    /// The profile does not set the key.
    Unset {
        /// The key.
        #[serde(deserialize_with = "leak::text")]
        unset: &'static str,
    },
    /// Compares a key's effective value with a constant or another key.
    Compare {
        /// The key.
        #[serde(deserialize_with = "leak::text")]
        key: &'static str,
        /// Element of a tuple.
        index: Option<usize>,
        /// Operator.
        op: Op,
        /// Constant operand.
        value: Option<i64>,
        /// Other key operand.
        #[serde(default, deserialize_with = "leak::opt_text")]
        other: Option<&'static str>,
        /// Element of the other key.
        other_index: Option<usize>,
    },
    /// A context fact equals a value.
    Context {
        /// The fact.
        #[serde(deserialize_with = "leak::text")]
        context: &'static str,
        /// The value it must equal.
        is: Scalar,
    },
    /// Target kernel version requirement.
    Kernel {
        /// The requirement.
        kernel: VersionReq,
    },
    /// Target Kubernetes version requirement.
    K8s {
        /// The requirement.
        k8s: VersionReq,
    },
}

/// A rule written as data in `rules.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataRule {
    /// Stable id.
    #[serde(deserialize_with = "leak::text")]
    pub id: &'static str,
    /// Severity.
    pub severity: Severity,
    /// The key the finding points at.
    #[serde(deserialize_with = "leak::text")]
    pub key: &'static str,
    /// Conditions, all of which must hold.
    #[serde(deserialize_with = "leak::list")]
    pub when: &'static [Condition],
    /// What is wrong.
    #[serde(deserialize_with = "leak::text")]
    pub message: &'static str,
    /// The fix.
    #[serde(deserialize_with = "leak::text")]
    pub help: &'static str,
    /// Where the rule comes from.
    #[serde(deserialize_with = "leak::texts")]
    pub sources: &'static [&'static str],
}

/// `deserialize_with` helpers that deserialise owned data and leak it into `'static` (see the
/// module docs for why that is fine).
pub mod leak {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer};

    /// A string.
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        String::deserialize(d).map(|text| &*text.leak())
    }

    /// An optional string (the field also needs `#[serde(default)]`).
    pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
        Option::<String>::deserialize(d).map(|text| text.map(|text| &*text.leak()))
    }

    /// A list of strings.
    pub fn texts<'de, D: Deserializer<'de>>(d: D) -> Result<&'static [&'static str], D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        let texts = texts.into_iter().map(|text| &*text.leak());
        Ok(texts.collect::<Vec<_>>().leak())
    }

    /// A list of anything.
    pub fn list<'de, D, T>(d: D) -> Result<&'static [T], D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + 'static,
    {
        Vec::<T>::deserialize(d).map(|items| &*items.leak())
    }

    /// A map from an instance name to a scope, as pairs sorted by the name.
    pub fn scopes<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<&'static [(&'static str, super::Scope)], D::Error> {
        let map = BTreeMap::<String, super::Scope>::deserialize(d)?;
        let pairs = map.into_iter().map(|(name, scope)| (&*name.leak(), scope));
        Ok(pairs.collect::<Vec<_>>().leak())
    }

    /// A map from integer to meaning, as pairs sorted by the integer.
    pub fn values<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<&'static [(i64, &'static str)], D::Error> {
        let map = BTreeMap::<i64, String>::deserialize(d)?;
        let pairs = map.into_iter().map(|(n, meaning)| (n, &*meaning.leak()));
        Ok(pairs.collect::<Vec<_>>().leak())
    }
}

/// A key entry's name split into components the way the key parser splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The components; `*` is a wildcard.
    pub components: Vec<String>,
    /// Whether any component is `*`.
    pub pattern: bool,
}

/// One row of a lookup table: a name's components and the entry's position in the key list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    /// The components; `*` in a pattern matches any one component.
    pub components: &'static [&'static str],
    /// Position in the key list.
    pub entry: usize,
}

/// The lookup tables of a key list. Lookups cost a binary search whatever the number of
/// entries: exact names by name, patterns by their last component (patterns ending in `*` are
/// few and scanned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// Exact names, sorted for binary search (see `name_order`).
    pub exact: &'static [Indexed],
    /// Names with a `*` but a literal last component, sorted by that component, then by
    /// position in the key list (the first entry that matches wins).
    pub patterns: &'static [Indexed],
    /// Names whose last component is `*`, in key-list order.
    pub wild: &'static [Indexed],
}

impl Index {
    /// Checks every entry of `keys` (its name parses with `parse`, it cites a source, no exact
    /// name or pattern is listed twice) and builds the tables, leaked like the keys themselves.
    /// Errors are messages for the keys file.
    pub fn build(
        keys: &[KeySpec],
        parse: impl Fn(&str) -> Result<Name, String>,
    ) -> Result<Index, String> {
        let (mut exact, mut patterns, mut wild) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = BTreeSet::new();
        for (entry, spec) in keys.iter().enumerate() {
            let name = parse(spec.key)?;
            if spec.sources.is_empty() {
                return Err(format!(
                    "{}: every entry needs at least one source",
                    spec.key
                ));
            }
            let components: Vec<&'static str> =
                name.components.into_iter().map(|c| &*c.leak()).collect();
            let row = Indexed {
                components: components.leak(),
                entry,
            };
            if !seen.insert(row.components) {
                return Err(format!("{} is listed twice", spec.key));
            }
            match (name.pattern, row.components.last()) {
                (false, _) => exact.push(row),
                (true, Some(&"*")) => wild.push(row),
                (true, _) => patterns.push(row),
            }
        }
        exact.sort_by(|a, b| name_order(a.components, b.components));
        patterns.sort_by(|a, b| {
            leaf(a.components)
                .cmp(leaf(b.components))
                .then(a.entry.cmp(&b.entry))
        });
        Ok(Index {
            exact: exact.leak(),
            patterns: patterns.leak(),
            wild: wild.leak(),
        })
    }

    /// The entry for a key given as components: the exact name, else the first matching
    /// pattern in key-list order.
    pub fn find(&self, key: &[impl AsRef<str>]) -> Option<usize> {
        let exact = self
            .exact
            .binary_search_by(|row| name_order(row.components, key))
            .ok()
            .map(|i| self.exact[i].entry);
        exact.or_else(|| {
            let matches = |row: &&Indexed| {
                row.components.len() == key.len()
                    && (row.components.iter().zip(key)).all(|(p, k)| *p == "*" || *p == k.as_ref())
            };
            let last = key.last().map(AsRef::as_ref).unwrap_or("");
            let start = self
                .patterns
                .partition_point(|row| leaf(row.components) < last);
            let same_leaf = self.patterns[start..]
                .iter()
                .take_while(|row| leaf(row.components) == last);
            let by_leaf = same_leaf.filter(matches).map(|row| row.entry).next();
            let by_wild = self.wild.iter().find(matches).map(|row| row.entry);
            by_leaf.into_iter().chain(by_wild).min()
        })
    }
}

/// The last component of a name.
fn leaf<'a>(components: &[&'a str]) -> &'a str {
    components.last().copied().unwrap_or("")
}

/// The order of the exact table: by the last component, where names mostly differ (most start
/// with `net.ipv4.`), so a binary-search probe is usually one short comparison; then by all.
fn name_order(a: &[impl AsRef<str>], b: &[impl AsRef<str>]) -> Ordering {
    let (leaf_a, leaf_b) = (a.last().map(AsRef::as_ref), b.last().map(AsRef::as_ref));
    leaf_a.cmp(&leaf_b).then_with(|| {
        let all_b = b.iter().map(AsRef::as_ref);
        a.iter().map(AsRef::as_ref).cmp(all_b)
    })
}

/// Every release the generated entries cover: the sorted union of their `kernels`.
pub fn covered(keys: &[KeySpec]) -> Vec<Version> {
    let all = keys.iter().filter(|s| s.generated).flat_map(|s| s.kernels);
    all.copied().collect::<BTreeSet<_>>().into_iter().collect()
}

/// Checks the rules: ids are unique, keys are valid (`check_key`), key comparisons have an
/// operand. Errors are messages for the rules file.
pub fn check_rules(
    rules: &[DataRule],
    check_key: impl Fn(&str) -> Result<(), String>,
) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for rule in rules {
        let bad = |message: String| format!("rule {}: {message}", rule.id);
        if !seen.insert(rule.id) {
            return Err(bad("id is used twice".into()));
        }
        check_key(rule.key).map_err(bad)?;
        let incomplete = |c: &Condition| {
            matches!(
                c,
                Condition::Compare {
                    value: None,
                    other: None,
                    ..
                }
            )
        };
        if rule.when.iter().any(incomplete) {
            return Err(bad("a key comparison needs `value` or `other`".into()));
        }
    }
    Ok(())
}
