"""The bounds probe: the catalogue's ``kernel_bounds`` tried on the real kernel.

For every writable integer key (shapes int, bool, enum) with ``kernel_bounds``, the guest
writes the minimum and the maximum (each must be accepted and read back as written) and the
values just outside, min-1 and max+1 (each must fail with EINVAL), writing the original value
back after every write. One guest boot probes the whole catalogue (``probe.sh`` reads a list).

Jiffies-based keys (seconds stored as jiffies: proc_dointvec_jiffies) accept ±INT_MAX/HZ, so
their bounds depend on CONFIG_HZ. The catalogue states them for HZ=250; a bound equal to
±INT_MAX/h for a common HZ h is recomputed for the probed kernel's HZ (and said so), and a
symbolic bound (``INT_MAX/HZ``) is evaluated with it.

The bounds are those of the probed release: ``older_bounds`` entries the release predates win
over ``kernel_bounds``, and a release whose parser accepts and drops a negative number
(``negative_ignored``) must accept min-1 and keep the value. Before the probe writes, it writes
each key's own value back once: a key the kernel refuses even that (a feature this machine
lacks, a boot value outside its own table) cannot be probed and is skipped with the error.

Some writes would wreck the guest or cannot be undone: they are skipped, with the reason, as are
the catalogue's triggers and one-way keys. A key paired with another (writing ``vm.dirty_bytes``
zeroes ``vm.dirty_ratio`` and back) is restored through its pair when its own original value is
0, which its table refuses.
"""

import re

from . import Check
from .agreement import instances

INT_MAX = 2**31 - 1
COMMON_HZ = (100, 250, 300, 1000)
SYMBOLS = {"INT_MAX": INT_MAX, "INT_MIN": -2**31, "UINT_MAX": 2**32 - 1,
           "LONG_MAX": 2**63 - 1, "LONG_MIN": -2**63, "ULONG_MAX": 2**64 - 1}

# Writes never probed, by key (all four writes) or key and side. Triggers and one-way keys are
# skipped by their catalogue marks (`trigger`, `one_way`).
SKIP = {
    "vm.nr_hugepages": "reserving huge pages up to the bound exhausts the guest's memory",
    "vm.nr_hugepages_mempolicy": "reserving huge pages up to the bound exhausts memory",
    "vm.nr_overcommit_hugepages": "huge page pool sizing: exhausts the guest's memory",
    "kernel.panic_on_oops": "makes the next oops fatal while set",
    "kernel.panic_on_warn": "makes the next kernel warning fatal while set",
    "kernel.softlockup_panic": "a slow TCG guest can stall: fatal while set",
    "kernel.hardlockup_panic": "a slow TCG guest can stall: fatal while set",
    "kernel.hung_task_panic": "fatal while set",
    "kernel.panic_on_rcu_stall": "a slow TCG guest can stall: fatal while set",
    "kernel.panic_on_unrecovered_nmi": "fatal while set",
    "kernel.panic_on_io_nmi": "fatal while set",
    "vm.panic_on_oom": "fatal while set",
}
SKIP_SIDES = {
    ("vm.min_free_kbytes", "max"): "reserving most of memory sends the guest into reclaim/OOM",
    ("vm.admin_reserve_kbytes", "max"): "reserving all memory for root starves the probe",
    ("vm.user_reserve_kbytes", "max"): "reserving all memory starves the probe",
}
PROBE_SHAPES = {"int", "bool", "enum"}
# Keys the kernel also checks against another key: that key is set first (and restored after)
# so the probe sees the table's own bound. ip_unprivileged_port_start may not exceed the low
# end of ip_local_port_range (net/ipv4/sysctl_net_ipv4.c); the RT runtime may not exceed the RT
# period unless it is -1, unlimited (sched_rt_global_validate, kernel/sched/rt.c).
CONTEXT = {
    "net.ipv4.ip_unprivileged_port_start": ("net.ipv4.ip_local_port_range", "65535 65535"),
    "kernel.sched_rt_period_us": ("kernel.sched_rt_runtime_us", "-1"),
    "kernel.sched_rt_runtime_us": ("kernel.sched_rt_period_us", "2147483647"),
}
# Keys written in pairs (mm/page-writeback.c): writing one zeroes the other, and 0 is outside
# the bytes key's own table, so a bytes key whose original is 0 is restored by writing its
# ratio's original back.
RESTORE_VIA = {
    "vm.dirty_bytes": "vm.dirty_ratio",
    "vm.dirty_background_bytes": "vm.dirty_background_ratio",
}


def version_of(release):
    """``6.12.117+deb13`` or ``6.1`` -> (6, 12) / (6, 1, 0): a tuple that compares."""
    parts = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    return tuple(int(p or 0) for p in parts.groups())


def bounds_on(entry, release):
    """(bounds, negative_ignored) of a catalogue entry on a release: the earliest
    ``older_bounds`` entry it predates, else ``kernel_bounds`` (as KeySpec::kernel_bounds_on)."""
    version = version_of(release)
    older = [b for b in entry.get("older_bounds") or [] if version < version_of(b["before"])]
    if older:
        first = min(older, key=lambda b: version_of(b["before"]))
        sides = {k: first[k] for k in ("min", "max") if first.get(k) is not None}
        return sides or None, bool(first.get("negative_ignored"))
    return entry.get("kernel_bounds"), False


def kernel_version(kernel):
    """The probed kernel's upstream version with its stable patch level (the package's
    ``5.10.223-1``; ``uname -r`` of Debian kernels says ``5.10.0``), else its release."""
    return kernel.meta.get("version") or kernel.release


def number(text):
    """An integer as the kernel prints it (decimal, or hex such as ``0x0000``), else None."""
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except (ValueError, AttributeError):
        return None


def skip_reason(entry):
    """Why the catalogue says a key must not be probed, or None."""
    if entry.get("trigger"):
        return "a trigger: writing performs an action, there is no state to restore"
    if entry.get("one_way"):
        return "one-way: " + entry["one_way"]["note"]
    return None


def resolve(bound, hz):
    """(value, note) of a bound for a kernel with this HZ."""
    if isinstance(bound, str):
        expr = bound.replace(" ", "")
        match = re.fullmatch(r"(-?)([A-Z_]+)(?:/HZ)?", expr)
        if not match or match.group(2) not in SYMBOLS:
            raise ValueError(f"cannot evaluate bound {bound!r}")
        value = SYMBOLS[match.group(2)] // (hz if "/HZ" in expr else 1)
        return (-value if match.group(1) else value), f"{bound} at HZ={hz}"
    for common in COMMON_HZ:
        if abs(bound) == INT_MAX // common and common != hz:
            value = INT_MAX // hz
            return (value if bound > 0 else -value), \
                f"jiffies bound {bound} (INT_MAX/{common}) recomputed for HZ={hz}"
    return bound, ""


class Bounds:
    """Writes inside and just outside every catalogued bound; tallies the result."""

    name = "bounds"
    timeout = 240

    def __init__(self):
        self.plan = {}      # key -> [(label, value)]
        self.skipped = {}   # key -> reason
        self.notes = {}     # key -> note (HZ)
        self.ignored = set()  # keys whose release accepts and drops a negative number
        self.tally = {}

    def files(self, ctx):
        """The list of writes for probe.sh."""
        self._plan(ctx)
        lines = []
        for key, writes in self.plan.items():
            context = CONTEXT.get(key)
            if context:
                lines.append(f"{context[0]}\tset\t{context[1]}")
            via = RESTORE_VIA.get(key, "")
            lines += [f"{key}\t{label}\t{value}\t{via}" for label, value in writes]
            if context:
                lines.append(f"{context[0]}\tunset\t")
        return {"lab/bounds.list": ("\n".join(lines) + "\n").encode()}

    def _plan(self, ctx):
        self.plan, self.skipped, self.notes, self.ignored = {}, {}, {}, set()
        for entry in ctx.schema["keys"]:
            bounds, negative_ignored = bounds_on(entry, kernel_version(ctx.kernel))
            if not bounds or entry["shape"] not in PROBE_SHAPES:
                continue
            key = instances(entry["key"])[-1]  # a pattern entry: its `default` instance
            reason = SKIP.get(key) or skip_reason(entry)
            if reason:
                self.skipped[key] = reason
                continue
            if negative_ignored:
                self.ignored.add(key)
            writes = [("self", "-")]  # "-": probe.sh writes the original
            for side, step in (("min", -1), ("max", 1)):
                if bounds.get(side) is None:
                    continue
                if (key, side) in SKIP_SIDES:
                    self.notes[key] = f"{side} not probed: {SKIP_SIDES[(key, side)]}"
                    continue
                try:
                    value, note = resolve(bounds[side], ctx.kernel.hz)
                except ValueError as err:
                    self.skipped[key] = str(err)
                    writes = []
                    break
                if note:
                    self.notes[key] = note
                if key in CONTEXT:
                    self.notes[key] = "probed with {} = {} (a kernel cross-check)".format(
                        *CONTEXT[key])
                outside = "min-1" if side == "min" else "max+1"
                writes += [(side, value), (outside, value + step)]
            if len(writes) > 1:
                self.plan[key] = writes

    def script(self, ctx):
        """Runs probe.sh over the list."""
        return "sh /etc/lab/probe.sh /lab/bounds.list /out/bounds/result.tsv"

    def analyze(self, ctx, out):
        """One check per probed key; the tally counts claims."""
        rows = {}
        for line in (out.text("result.tsv") or "").splitlines():
            parts = line.split("\t")
            if len(parts) >= 7:  # the read-back of a tuple holds tabs itself
                row = parts[:4] + ["\t".join(parts[4:-2])] + parts[-2:]
                rows.setdefault(parts[0], []).append(row)
        tally = {"probed": 0, "confirmed": 0, "contradicted": [], "skipped": dict(self.skipped),
                 "notes": dict(self.notes)}
        checks = []
        for key in self.plan:
            # a key can also be another's context: its set/unset rows are checked below
            got = [r for r in rows.get(key, []) if r[1] not in ("set", "unset")]
            if not got:
                checks.append(Check(f"bounds {key}", False, "the probe recorded nothing"))
                continue
            if got[0][3] in ("absent", "read-only"):
                tally["skipped"][key] = {"absent": "absent on this kernel",
                                         "read-only": "read-only on this kernel"}[got[0][3]]
                continue
            reason = refused_reason(key, got[0])
            if reason:
                tally["skipped"][key] = reason
                continue
            got = [r for r in got if r[1] != "self"]
            tally["probed"] += 1
            stored = [f"{r[1]}={r[2]} accepted, stored as {r[4]!r}" for r in got
                      if r[1] in ("min", "max") and r[3] == "ok"
                      and not same_number(r[4], r[2])]
            if stored:
                tally["notes"][key] = "; ".join(stored)
            ignored = key in self.ignored
            problems = [p for p in (self._judge(row, ignored) for row in got) if p]
            tally["confirmed"] += len(got) - len(problems)
            tally["contradicted"] += [f"{key}: {p}" for p in problems]
            checks.append(Check(f"bounds {key}", not problems, "; ".join(problems)))
        for key, _ in set(CONTEXT.values()):
            unset = [r for r in rows.get(key, []) if r[1] == "unset"]
            if unset:
                checks.append(Check(f"bounds context {key} restored",
                                    all(r[5] == "restored" for r in unset),
                                    f"after the probe it holds {unset[-1][4]!r}"))
        self.tally = tally
        return checks

    @staticmethod
    def _judge(row, negative_ignored=False):
        _, label, value, result, back, restored, kept = row
        problems = []
        inside = label in ("min", "max")
        dropped = negative_ignored and label == "min-1" and value.startswith("-")
        if inside and result != "ok":
            problems.append(f"{label}={value} rejected ({result})")
        elif dropped:
            if result != "ok" or kept != "unchanged":
                problems.append(f"{label}={value} gave {result} (reads back {back!r}); the "
                                "catalogue says this release accepts a negative number and "
                                "keeps the value")
        elif not inside and result == "ok":
            problems.append(f"{label}={value} accepted (reads back {back!r}), "
                            "the catalogue says EINVAL")
        elif not inside and result != "Invalid argument":
            problems.append(f"{label}={value} rejected with {result!r}, not EINVAL")
        if restored != "restored":
            problems.append(f"original value not restored after {label}")
        return "; ".join(problems)


def refused_reason(key, row):
    """Why a key whose own value could not be written back is not probed, or None: a boot
    value outside the key's own table (EINVAL) cannot be restored, unless through its pair."""
    _, label, value, result = row[:4]
    if label != "self" or result == "ok":
        return None
    if result == "Invalid argument":
        if key in RESTORE_VIA:
            return None
        return (f"its value {value!r} lies outside its own table (EINVAL when written back): "
                "the probe could not restore it")
    return f"writing its own value {value!r} back fails ({result}): not writable here"


def same_number(back, value):
    """Whether a read-back is the number written (decimal or hex; a tuple: field by field)."""
    fields = back.split()
    return len(fields) == 1 and number(fields[0]) is not None and number(fields[0]) == number(value)
