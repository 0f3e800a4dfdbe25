#!/usr/bin/env python3
"""Summarises a bench/run result directory: medians, ratios side by side, PASS/MISS per target.

Input (written by bench/run): `<group>.tsv` from bench/alternate.c (measurement id, seconds, peak
RSS in KiB; one line per run), `meta.tsv` (key, value) and `skips.txt` (one line per peer or
measurement that could not run).
Usage: report.py RESULT_DIR   (exit 0 always; the verdicts are in the text)
"""

import glob
import os
import statistics
import sys

import fleet_report  # bench/fleet_report.py: the fleet-timing section (issue 16)
import sockets_report  # bench/sockets_report.py: the sockets-at-scale section (issue 16)

RSS_LIMIT_KIB = 4096

# id -> label shown in the tables
LABELS = {
    "read.minread": "minread (C: open/read/close per file)",
    "read.sysctl": "sysctl -a (procps)",
    "read.sysprof": "sysprof export",
    "diff.mindiff": "mindiff (C: 30 keys)",
    "diff.sysprof": "sysprof diff",
    "apply.sysctl": "sysctl -p",
    "apply.sysprof": "sysprof apply (30 changes)",
    "apply.sysprof-insync": "sysprof apply (in sync)",
    "apply.sysprof-tmpfs": "sysprof apply, state on tmpfs",
    "apply.tuned": "tuned one-shot",
    "apply.ansible-first": "ansible sysctl, first run",
    "apply.ansible-rerun": "ansible sysctl, re-run",
    "validate.sysprof": "sysprof validate profiles/*.yaml",
    "start.true": "/bin/true",
    "start.rust": "hello world in Rust (static)",
    "start.sysprof": "sysprof --version",
}


def load(directory):
    times = {}  # (group, id) -> [seconds]
    rss = {}  # id -> [KiB], every run of every group
    for path in sorted(glob.glob(os.path.join(directory, "*.tsv"))):
        group = os.path.basename(path)[: -len(".tsv")]
        if group == "meta":
            continue
        for line in open(path):
            ident, seconds, kib = line.split("\t")
            times.setdefault((group, ident), []).append(float(seconds))
            rss.setdefault(ident, []).append(int(kib))
    meta = {}
    meta_path = os.path.join(directory, "meta.tsv")
    if os.path.exists(meta_path):
        for line in open(meta_path):
            key, _, value = line.rstrip("\n").partition("\t")
            meta[key] = value
    skips_path = os.path.join(directory, "skips.txt")
    skips = open(skips_path).read().splitlines() if os.path.exists(skips_path) else []
    return times, rss, meta, skips


def fmt(seconds):
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.2f} ms"


def main():
    directory = sys.argv[1]
    times, rss, meta, skips = load(directory)

    def med(group, ident):
        samples = times.get((group, ident))
        return statistics.median(samples) if samples else None

    def runs(group, ident):
        return len(times.get((group, ident), []))

    # sysprof apply runs in several groups (alternating with each peer); ratios to the slow peers
    # use all its runs of this bench run.
    pooled = {}
    for (group, ident), samples in times.items():
        if ident.startswith("apply.sysprof") and group in ("apply", "tuned", "ansible"):
            pooled.setdefault(ident, []).extend(samples)
    for ident, samples in pooled.items():
        times[("pooled", ident)] = samples

    print(f"sysprof bench: {meta.get('when', '?')}")
    print(
        f"  kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} CPUs, load average at start "
        f"{meta.get('load', '?')}; {meta.get('sysprof', '?')} ({meta.get('binary_mib', '?')} MiB, "
        f"{meta.get('linking', '?')})"
    )
    print(
        f"  state and persisted files on {meta.get('fs', '?')}; one fsync there "
        f"(write+fsync+rename+fsync dir, per fsync) ~ {meta.get('fsync_ms', '?')} ms"
    )
    print(
        f"  runs per command: {meta.get('runs', '?')}, interleaved run by run with the other commands "
        "of its group (bench/alternate.c); figures are medians"
    )
    print()

    verdicts = []
    header = f"{'measurement':<38} {'median':>10} {'runs':>5}  {'ratio':>14}"
    print(header)
    print("-" * len(header))

    def row(group, ident, base=None, note=""):
        m = med(group, ident)
        if m is None:
            return None
        ratio = ""
        if base is not None and med(group, base):
            ratio = f"{m / med(group, base):.2f}x {short(base)}"
        print(f"  {LABELS.get(ident, ident):<36} {fmt(m):>10} {runs(group, ident):>5}  {ratio:>14} {note}")
        return m

    def short(ident):
        return ident.split(".", 1)[1]

    def target(name, ok, detail):
        if ok is None:
            verdicts.append(("SKIP", name, detail))
        else:
            verdicts.append(("PASS" if ok else "MISS", name, detail))

    def ratio(group, a, b):
        ma, mb = med(group, a), med(group, b)
        return ma / mb if ma and mb else None

    print("full read of every key (read only, in the bench namespace)")
    row("read", "read.minread")
    row("read", "read.sysctl", "read.minread")
    row("read", "read.sysprof", "read.minread")
    r = ratio("read", "read.sysprof", "read.minread")
    target(
        "full read <= 1.2x minimal reader",
        None if r is None else r <= 1.2,
        f"{r:.2f}x" if r else meta.get("read_skip", "not measured"),
    )

    print("diff of a 30-key net.* profile (30 keys pending)")
    row("diff", "diff.mindiff")
    row("diff", "diff.sysprof", "diff.mindiff")
    r = ratio("diff", "diff.sysprof", "diff.mindiff")
    target("diff <= 1.5x minimal differ", None if r is None else r <= 1.5, f"{r:.2f}x" if r else "not measured")

    print("apply of the same 30 keys (reset to the namespace's defaults before every run)")
    row("apply", "apply.sysctl")
    row("apply", "apply.sysprof", "apply.sysctl")
    row("apply", "apply.sysprof-insync", "apply.sysctl")
    r = ratio("apply", "apply.sysprof", "apply.sysctl")
    target("apply <= 3x sysctl -p", None if r is None else r <= 3, f"{r:.2f}x" if r else "not measured")
    if times.get(("apply-tmpfs", "apply.sysprof-tmpfs")):
        print("the same apply with its state dir and persisted file on tmpfs (no disk flush; not a target)")
        row("apply-tmpfs", "apply.sysctl")
        row("apply-tmpfs", "apply.sysprof-tmpfs", "apply.sysctl")

    if times.get(("tuned", "apply.tuned")):
        print("tuned one-shot (daemon = 0, reapply_sysctl = 0, a [sysctl] profile of the same keys)")
        row("tuned", "apply.sysprof", note="(alternating with tuned)")
        row("pooled", "apply.sysprof", note="(every apply run of this bench)")
        times[("pooled", "apply.tuned")] = times[("tuned", "apply.tuned")]
        row("pooled", "apply.tuned", "apply.sysprof")
        r = ratio("pooled", "apply.tuned", "apply.sysprof")
        target("apply >= 30x faster than tuned one-shot", r >= 30, f"{r:.0f}x")
    else:
        target("apply >= 30x faster than tuned one-shot", None, "tuned not available")

    if times.get(("ansible", "apply.ansible-first")):
        print("Ansible ansible.posix.sysctl, one task looping over the 30 keys (sysctl_set, sysctl_file)")
        row("ansible", "apply.sysprof", note="(alternating with Ansible)")
        row("pooled", "apply.sysprof", note="(every apply run of this bench)")
        for ident in ("apply.ansible-first", "apply.ansible-rerun"):
            times[("pooled", ident)] = times[("ansible", ident)]
        row("pooled", "apply.ansible-first", "apply.sysprof")
        row("pooled", "apply.sysprof-insync", note="(every in-sync run)")
        row("pooled", "apply.ansible-rerun", "apply.sysprof-insync")
        r1 = ratio("pooled", "apply.ansible-first", "apply.sysprof")
        r2 = ratio("pooled", "apply.ansible-rerun", "apply.sysprof-insync")
        target("apply >= 1000x faster than Ansible (first run)", r1 >= 1000, f"{r1:.0f}x")
        target("apply >= 1000x faster than Ansible (idempotent re-run)", r2 >= 1000, f"{r2:.0f}x")
    else:
        target("apply >= 1000x faster than Ansible", None, "Ansible not available")

    print("validate every shipped profile; process start-up")
    v = row("validate", "validate.sysprof")
    row("start", "start.true")
    row("start", "start.rust", "start.true")
    row("start", "start.sysprof", "start.true")
    target(
        "validate every shipped profile < 5 ms",
        None if v is None else v < 0.005,
        fmt(v),
    )

    print()
    sockets_report.report(*sockets_report.load(directory)[:2], meta, target)
    print()
    fleet_report.report(directory, meta)

    print()
    print("peak RSS (wait4 ru_maxrss of the measured process tree, median over its runs)")
    worst = None
    for ident in LABELS:
        if ident in rss:
            kib = statistics.median(rss[ident])
            mark = ""
            if "sysprof" in ident:
                mark = "  <= 4 MiB" if kib <= RSS_LIMIT_KIB else "  > 4 MiB"
                worst = max(worst or 0, kib)
            print(f"  {LABELS[ident]:<36} {kib / 1024:>8.2f} MiB{mark}")
    target(
        "peak RSS <= 4 MiB (every sysprof command)",
        None if worst is None else worst <= RSS_LIMIT_KIB,
        f"largest {worst / 1024:.2f} MiB" if worst else "not measured",
    )

    if meta.get("apply_fsyncs"):
        n, cost = int(meta["apply_fsyncs"]), float(meta.get("fsync_ms", "nan"))
        print()
        print(
            f"apply bound: {n} fsync(2)/fdatasync(2) per apply (strace: record, journal, persisted file: "
            f"file and directory; history: the appended line) x {cost:.2f} ms per fsync on this disk "
            f"= {n * cost:.1f} ms"
        )
        disk, tmpfs = med("apply", "apply.sysprof"), med("apply-tmpfs", "apply.sysprof-tmpfs")
        floor = med("apply", "apply.sysctl")
        if disk and tmpfs and floor:
            print(
                f"  apply on disk {fmt(disk)} = apply without disk flushes {fmt(tmpfs)} + {fmt(disk - tmpfs)} "
                f"waiting for the disk ({(disk - tmpfs) * 1000 / n:.2f} ms per fsync); 3x sysctl -p = "
                f"{fmt(3 * floor)} leaves room for {int(3 * floor * 1000 // cost)} fsync(s) of {cost:.2f} ms"
            )
        if tmpfs:
            peers = [
                ("sysctl -p", med("apply-tmpfs", "apply.sysctl"), "<= 3x", lambda r: r <= 3, False),
                ("tuned one-shot", med("pooled", "apply.tuned"), ">= 30x", lambda r: r >= 30, True),
                ("Ansible first run", med("pooled", "apply.ansible-first"), ">= 1000x", lambda r: r >= 1000, True),
            ]
            parts = []
            for name, peer, goal, ok, faster in peers:
                if peer:
                    r = peer / tmpfs if faster else tmpfs / peer
                    parts.append(f"{name} {r:.1f}x ({goal}: {'met' if ok(r) else 'not met'})")
            print("  without the disk flushes, apply vs " + "; ".join(parts))
    start, true, diff = med("start", "start.sysprof"), med("start", "start.true"), med("diff", "diff.sysprof")
    rust, mindiff = med("start", "start.rust"), med("diff", "diff.mindiff")
    if start and true and diff and mindiff:
        rust_note = f"a static Rust hello world {fmt(rust)}, so " if rust else ""
        print(
            f"start-up bound: `sysprof --version` takes {fmt(start)}, {fmt(start - true)} more than /bin/true "
            f"({rust_note}the rest is clap building its top level and the page faults of a "
            f"{meta.get('binary_mib', '?')} MiB binary); that is {start / diff:.0%} of diff's {fmt(diff)}, "
            f"and {start / mindiff:.2f}x mindiff on its own (target for all of diff: 1.5x = {fmt(1.5 * mindiff)})"
        )
    read, version, minread = med("read", "read.sysprof"), start, med("read", "read.minread")
    if read and version and minread and true:
        print(
            f"full-read bound: export {fmt(read)} = start-up ({fmt(version)}) + {fmt(read - version)} for the keys; "
            f"minread {fmt(minread)} = start-up (/bin/true {fmt(true)}) + {fmt(minread - true)}"
        )
    if "start.sysprof" in rss:
        print(
            f"RSS bound: `sysprof --version` alone peaks at {statistics.median(rss['start.sysprof']) / 1024:.2f} MiB "
            f"(/bin/true {statistics.median(rss.get('start.true', [0])) / 1024:.2f} MiB: its libc and ld.so pages)"
        )
    for key in ("syscalls", "syscalls_per_key"):
        if meta.get(key):
            print(meta[key])

    if skips:
        print()
        for line in skips:
            print(f"SKIP {line}")
    print()
    print("targets")
    for verdict, name, detail in verdicts:
        print(f"  {verdict}  {name:<52} {detail}")


if __name__ == "__main__":
    main()
