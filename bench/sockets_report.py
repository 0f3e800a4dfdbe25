#!/usr/bin/env python3
"""The "sockets at scale" section of the bench report (issue 16), from bench/sockets' results.

Input: `sockets-LEVEL.tsv` (bench/alternate.c lines: `sockets.COMMAND@LEVEL`, seconds, peak RSS in
KiB) and `meta.tsv` lines `sockets@LEVEL` (the census before and after each batch of runs,
separated by `|`) and `sockets_cpu@LEVEL`. bench/report.py
calls `report`; run alone it prints the section for a result directory:

    sockets_report.py RESULT_DIR
"""

import glob
import os
import re
import statistics
import sys

RATIO_TARGET = 0.5
RSS_TARGET_KIB = 8 * 1024
# (command id, column label, description)
COMMANDS = [
    ("ss", "ss | wc -l", "ss -tan state all | wc -l"),
    ("doctor", "doctor", "sysprof --netns NS doctor (netlink sock_diag)"),
    ("health", "health (2 samples)", "sysprof --netns NS health PROFILE --over 0s"),
    ("doctor-proc", "doctor via /proc", "doctor --proc-net /proc/self/net (the fallback)"),
]


def load(directory):
    """(level -> command -> [seconds], level -> command -> [KiB], meta dict)."""
    times, rss = {}, {}
    for path in glob.glob(os.path.join(directory, "sockets-*.tsv")):
        for line in open(path):
            ident, seconds, kib = line.rstrip("\n").split("\t")
            m = re.fullmatch(r"sockets\.([a-z-]+)@(\d+)", ident)
            if m:
                command, level = m.group(1), int(m.group(2))
                times.setdefault(level, {}).setdefault(command, []).append(float(seconds))
                rss.setdefault(level, {}).setdefault(command, []).append(int(kib))
    meta = {}
    meta_path = os.path.join(directory, "meta.tsv")
    if os.path.exists(meta_path):
        for line in open(meta_path):
            key, _, value = line.rstrip("\n").partition("\t")
            meta[key] = value
    return times, rss, meta


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def counted(meta, level):
    """The socket count before the runs, as measured (not the nominal level)."""
    m = re.match(r"before (\d+)", meta.get(f"sockets@{level}", ""))
    return int(m.group(1)) if m else level


def report(times, rss, meta, target):
    """Prints the section; calls target(name, ok or None, detail) for each target."""
    if not times:
        target("sockets: doctor and health <= 0.5x ss at 100k sockets", None, "not measured")
        return
    levels = sorted(times)
    med = {lv: {c: statistics.median(v) for c, v in times[lv].items()} for lv in levels}
    print(f"TCP sockets at scale: a fresh namespace per level, {meta.get('sockets_mix', '?')}")
    print("  (bench/sockets; the commands interleaved run by run inside the namespace; medians, ratio to ss)")
    for _, label, description in COMMANDS:
        print(f"    {label:<20} {description}")
    print(f"  {'sockets':>8} {'runs':>4}" + "".join(f" {label:>22}" for _, label, _ in COMMANDS))
    for lv in levels:
        ss = med[lv].get("ss")
        cells = []
        for command, _, _ in COMMANDS:
            m = med[lv].get(command)
            ratio = f" {m / ss:.2f}x" if m is not None and ss and command != "ss" else ""
            cells.append(f" {ms(m) + ratio:>22}")
        runs = len(times[lv].get("ss", []))
        print(f"  {counted(meta, lv):>8} {runs:>4}" + "".join(cells))
    if len(levels) > 1:
        lo, hi = levels[0], levels[-1]
        span = (counted(meta, hi) - counted(meta, lo)) / 10000
        parts = []
        for command, label, _ in COMMANDS:
            a, b = med[lo].get(command), med[hi].get(command)
            if a is not None and b is not None and span > 0:
                parts.append(f"{label} {(b - a) / span * 1000:.1f} ms")
        print(f"  cost per 10k sockets ({counted(meta, lo)} -> {counted(meta, hi)}): " + "; ".join(parts))
    top = levels[-1]
    health, doctor, ss = (med[top].get(c) for c in ("health", "doctor", "ss"))
    if health and doctor and ss:
        print(
            f"  one health sample at {counted(meta, top)} sockets: health minus doctor (the second sample) "
            f"{ms(health - doctor)} = {(health - doctor) / ss:.2f}x ss"
        )
    print(f"  peak RSS at {counted(meta, top)} sockets (wait4, median): " + "; ".join(
        f"{label} {statistics.median(rss[top][c]) / 1024:.2f} MiB"
        for c, label, _ in COMMANDS if c in rss[top]))
    cpu = meta.get(f"sockets_cpu@{top}")
    if cpu:
        print(f"  CPU time at {counted(meta, top)} sockets (rusage, median of 3): {cpu}")
    for lv in levels:
        for batch, note in enumerate(meta.get(f"sockets@{lv}", "").split("|"), 1):
            if not note:
                continue
            print(f"  census @{lv}, batch {batch}: {note}")
            m = re.match(r"before (\d+).*after (\d+)", note)
            if m and abs(int(m.group(2)) - int(m.group(1))) > int(m.group(1)) // 50:
                print(f"  WARNING @{lv}: the socket count moved by more than 2% during batch {batch} (TIME_WAIT expires after 60 s)")
    ss = med[top].get("ss")
    n = counted(meta, top)
    for command, label in (("doctor", "doctor"), ("health", "health check (2 samples)")):
        m = med[top].get(command)
        ok = None if m is None or not ss else m / ss <= RATIO_TARGET
        detail = f"{m / ss:.2f}x ({ms(m)} vs {ms(ss)})" if ok is not None else "not measured"
        target(f"sockets: {label} <= 0.5x ss at {n}", ok, detail)
    worst = max(
        (statistics.median(v) for c, v in rss[top].items() if c != "ss"), default=None
    )
    target(
        f"sockets: sysprof peak RSS <= 8 MiB at {n}",
        None if worst is None else worst <= RSS_TARGET_KIB,
        "not measured" if worst is None else f"largest {worst / 1024:.2f} MiB",
    )


def main():
    verdicts = []
    times, rss, meta = load(sys.argv[1])
    report(times, rss, meta, lambda name, ok, detail: verdicts.append((name, ok, detail)))
    print()
    for name, ok, detail in verdicts:
        verdict = "SKIP" if ok is None else ("PASS" if ok else "MISS")
        print(f"  {verdict}  {name:<52} {detail}")


if __name__ == "__main__":
    main()
