"""The bounds probe: the catalogue's ``kernel_bounds`` tried on the real kernel.

For every writable integer key (shapes int, bool, enum) with ``kernel_bounds``, the guest
writes the minimum and the maximum (each must be accepted and read back as written) and the
values just outside, min-1 and max+1 (each must fail with EINVAL), writing the original value
back after every write. One guest boot probes the whole catalogue (``probe.sh`` reads a list).

Jiffies-based keys (seconds stored as jiffies: proc_dointvec_jiffies) accept ±INT_MAX/HZ, so
their bounds depend on CONFIG_HZ. The catalogue states them for HZ=250; a bound equal to
±INT_MAX/h for a common HZ h is recomputed for the probed kernel's HZ (and said so), and a
symbolic bound (``INT_MAX/HZ``) is evaluated with it.

Some writes would wreck the guest or cannot be undone: they are skipped, with the reason.
"""

import re

from . import Check
from .agreement import instances

INT_MAX = 2**31 - 1
COMMON_HZ = (100, 250, 300, 1000)
SYMBOLS = {"INT_MAX": INT_MAX, "INT_MIN": -2**31, "UINT_MAX": 2**32 - 1,
           "LONG_MAX": 2**63 - 1, "LONG_MIN": -2**63, "ULONG_MAX": 2**64 - 1}

# Writes never probed, by key (all four writes) or key and side.
SKIP = {
    "vm.nr_hugepages": "reserving huge pages up to the bound exhausts the guest's memory",
    "vm.nr_hugepages_mempolicy": "reserving huge pages up to the bound exhausts memory",
    "vm.nr_overcommit_hugepages": "huge page pool sizing: exhausts the guest's memory",
    "kernel.modules_disabled": "one-way until reboot: 1 forbids every later module load",
    "kernel.kexec_load_disabled": "one-way until reboot",
    "kernel.yama.ptrace_scope": "3 is one-way until reboot",
    "kernel.unprivileged_bpf_disabled": "1 is one-way until reboot",
    "vm.drop_caches": "a trigger, not a state: nothing to restore",
    "vm.compact_memory": "a trigger, not a state: nothing to restore",
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
# end of ip_local_port_range (net/ipv4/sysctl_net_ipv4.c).
CONTEXT = {
    "net.ipv4.ip_unprivileged_port_start": ("net.ipv4.ip_local_port_range", "65535 65535"),
}


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
        self.tally = {}

    def files(self, ctx):
        """The list of writes for probe.sh."""
        self._plan(ctx)
        lines = []
        for key, writes in self.plan.items():
            context = CONTEXT.get(key)
            if context:
                lines.append(f"{context[0]}\tset\t{context[1]}")
            lines += [f"{key}\t{label}\t{value}" for label, value in writes]
            if context:
                lines.append(f"{context[0]}\tunset\t")
        return {"lab/bounds.list": ("\n".join(lines) + "\n").encode()}

    def _plan(self, ctx):
        self.plan, self.skipped, self.notes = {}, {}, {}
        for entry in ctx.schema["keys"]:
            bounds = entry.get("kernel_bounds")
            if not bounds or entry["shape"] not in PROBE_SHAPES:
                continue
            key = instances(entry["key"])[-1]  # a pattern entry: its `default` instance
            if key in SKIP:
                self.skipped[key] = SKIP[key]
                continue
            writes = []
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
            if writes:
                self.plan[key] = writes

    def script(self, ctx):
        """Runs probe.sh over the list."""
        return "sh /etc/lab/probe.sh /lab/bounds.list /out/bounds/result.tsv"

    def analyze(self, ctx, out):
        """One check per probed key; the tally counts claims."""
        rows = {}
        for line in (out.text("result.tsv") or "").splitlines():
            parts = line.split("\t")
            if len(parts) >= 6:  # the read-back of a tuple holds tabs itself
                row = parts[:4] + ["\t".join(parts[4:-1]), parts[-1]]
                rows.setdefault(parts[0], []).append(row)
        tally = {"probed": 0, "confirmed": 0, "contradicted": [], "skipped": dict(self.skipped),
                 "notes": dict(self.notes)}
        checks = []
        for key in self.plan:
            got = rows.get(key)
            if not got:
                checks.append(Check(f"bounds {key}", False, "the probe recorded nothing"))
                continue
            if got[0][3] in ("absent", "read-only"):
                tally["skipped"][key] = {"absent": "absent on this kernel",
                                         "read-only": "read-only on this kernel"}[got[0][3]]
                continue
            tally["probed"] += 1
            stored = [f"{r[1]}={r[2]} accepted, stored as {r[4]!r}" for r in got
                      if r[1] in ("min", "max") and r[3] == "ok" and r[4].split() != [r[2]]]
            if stored:
                tally["notes"][key] = "; ".join(stored)
            problems = [p for p in (self._judge(row) for row in got) if p]
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
    def _judge(row):
        _, label, value, result, back, restored = row
        problems = []
        inside = label in ("min", "max")
        if inside and result != "ok":
            problems.append(f"{label}={value} rejected ({result})")
        elif not inside and result == "ok":
            problems.append(f"{label}={value} accepted (reads back {back!r}), "
                            "the catalogue says EINVAL")
        elif not inside and result != "Invalid argument":
            problems.append(f"{label}={value} rejected with {result!r}, not EINVAL")
        if restored != "restored":
            problems.append(f"original value not restored after {label}")
        return "; ".join(problems)
