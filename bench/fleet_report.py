#!/usr/bin/env python3
"""The "fleet timing" section of the bench report (issue 16), from bench/fleet's results.

Input: `meta.tsv` lines `fleet_PLAY` (start and end of the play, seconds of bash's
EPOCHREALTIME), `fleet_hosts`, `fleet_watch`, `fleet_forks`, `fleet_ansible`; and
`fleet-sysprof.log`: a `play <tab> NAME` line before each play's invocations, then one line per
sysprof run (arguments, start, end, and `times`' user and system CPU such as `0m0.004s`).
bench/report.py calls `report`; run alone it prints the section for a result directory:

    fleet_report.py RESULT_DIR
"""

import os
import re
import statistics
import sys

PLAYS = [
    ("rollout", "rollout.yml, sysprof module (apply --watch, then persist)"),
    ("noop", "the same play, /bin/true in place of the module"),
    ("rerun", "rollout.yml again, every host in sync"),
]


def load_meta(directory):
    """meta.tsv as a dict (the last value of a key wins)."""
    meta = {}
    path = os.path.join(directory, "meta.tsv")
    if os.path.exists(path):
        for line in open(path):
            key, _, value = line.rstrip("\n").partition("\t")
            meta[key] = value
    return meta


def seconds(text):
    """`times` output such as `0m0.004s` (or `0m0,004s` in some locales) as seconds."""
    m = re.fullmatch(r"(\d+)m(\d+)[.,](\d+)s", text.strip())
    if not m:
        return 0.0
    return int(m.group(1)) * 60 + float(f"{m.group(2)}.{m.group(3)}")


def load_runs(directory):
    """play name -> [(args, wall seconds, cpu seconds)] of the sysprof runs during that play."""
    runs, play = {}, None
    path = os.path.join(directory, "fleet-sysprof.log")
    if not os.path.exists(path):
        return runs
    for line in open(path):
        fields = line.rstrip("\n").split("\t")
        if fields[0] == "play":
            play = fields[1]
            runs.setdefault(play, [])
        elif len(fields) == 5 and play:
            args, start, end, user, system = fields
            wall = float(end) - float(start)
            runs[play].append((args, wall, seconds(user) + seconds(system)))
    return runs


def parse_duration(text):
    """`1s`, `500ms`, `2m` as seconds (what bench/fleet passes as the watch window)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text or "")
    if not m:
        return 0.0
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def ms(value):
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def report(directory, meta):
    """Prints the section."""
    hosts = int(meta.get("fleet_hosts", "0") or 0)
    walls = {}
    for play, _ in PLAYS:
        start, _, end = meta.get(f"fleet_{play}", "").partition(" ")
        if start and end:
            walls[play] = float(end) - float(start)
    if not hosts or "rollout" not in walls:
        print("fleet timing: not measured")
        return
    runs = load_runs(directory)
    watch = parse_duration(meta.get("fleet_watch"))
    print(
        f"fleet timing: examples/ansible/rollout.yml over {hosts} network-namespace hosts "
        f"(serial 1, 20%, 100%; {meta.get('fleet_forks', '?')} forks; watch {meta.get('fleet_watch', '?')}; "
        f"{meta.get('fleet_ansible', 'ansible')})"
    )
    print(f"  {'play':<58} {'wall':>9} {'per host':>9}  sysprof per host: {'wall':>7} {'CPU':>7}")
    for play, label in PLAYS:
        if play not in walls:
            continue
        mine = runs.get(play, [])
        wall = sum(r[1] for r in mine) / hosts
        cpu = sum(r[2] for r in mine) / hosts
        tail = f"{ms(wall):>7} {ms(cpu):>7}  ({len(mine)} runs)" if mine else "-"
        print(f"  {label:<58} {ms(walls[play]):>9} {ms(walls[play] / hosts):>9}  {'':>17}{tail}")
    if "noop" in walls:
        rollout, noop = walls["rollout"], walls["noop"]
        mine = runs.get("rollout", [])
        sysprof_wall = sum(r[1] for r in mine) / hosts
        applies = [r for r in mine if "--watch" in r[0]]
        work = statistics.median(r[1] for r in applies) - watch if applies else None
        added = (rollout - noop) / hosts
        added_text = (
            f"the module adds {ms(added)} of play time"
            if added > 0
            else "the two plays differ by less than their run-to-run noise"
        )
        print(
            f"  per host: Ansible's own overhead {ms(noop / hosts)} (the no-op play); {added_text}; "
            f"sysprof runs {ms(sysprof_wall)} per host (wall, {watch:g} s of it the watch window, "
            "which is waiting, not work; the hosts of a batch run in parallel)"
        )
        if work is not None:
            print(
                f"  one watched apply: median {ms(work + watch)} wall = the {watch:g} s watch window "
                f"+ {ms(work)} of sysprof's own work (apply, sampling, persisting)"
            )
    if "rerun" in walls and runs.get("rerun"):
        rerun = runs["rerun"]
        print(
            f"  in sync (the repeated run): sysprof {ms(statistics.median(r[1] for r in rerun))} median per "
            f"invocation, Ansible {ms(walls['rerun'] / hosts)} of play time per host"
        )


if __name__ == "__main__":
    report(sys.argv[1], load_meta(sys.argv[1]))
