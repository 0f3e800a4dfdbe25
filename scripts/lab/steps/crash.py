"""kill -9 of apply and rollback at random moments, with global keys, then ``sysprof recover``.

One unkilled apply and rollback measure how long each takes in this guest; every trial then
starts the command, sends SIGKILL after a random delay between 0 and 1.2 times that duration,
runs ``recover`` and records the raw values, the history and the status. Afterwards the
kernel must hold all the old values or all the new ones, and the history must say which:
one more apply entry (in effect) exactly when the values are new after a killed apply, one more
rollback entry exactly when they are old after a killed rollback. No journal may be left.
"""

from . import Check, profile_yaml, same_value

TRIALS = 12
KEYS = [
    ("vm.swappiness", 23, "Lab: kill -9 trials on a global vm key."),
    ("vm.dirty_ratio", 31, "Lab: kill -9 trials; written after vm.swappiness."),
    ("kernel.pid_max", 88888, "Lab: kill -9 trials on a global kernel key."),
    ("fs.file-max", 2345678, "Lab: kill -9 trials on an unsigned long key."),
    ("net.core.somaxconn", 8191, "Lab: kill -9 trials; a per-netns key among global ones."),
    ("net.netfilter.nf_conntrack_max", 65432, "Lab: kill -9 trials on a module's key."),
]

SCRIPT = r"""
SP="sysprof --state-dir /tmp/crash --no-persist --schema /lab/schema --color never"
O=/out/crash
labmod nf_conntrack
# every key's value in one process (a fork costs tens of ms under TCG)
snap() {{
    awk -v keys="{keys}" 'BEGIN {{ n = split(keys, k, " ")
        for (i = 1; i <= n; i++) {{ f = k[i]; gsub(/\./, "/", f); f = "/proc/sys/" f
            v = ""; getline v < f; close(f); print k[i] "\t" v }} }}'
}}
now() {{ read -r up _ </proc/uptime; echo "${{up%.*}}${{up#*.}}"; }}   # centiseconds
snap >$O/old
t0=$(now); $SP apply /lab/crash.yaml >$O/calibrate-apply.out 2>&1; t1=$(now)
snap >$O/new
$SP rollback >$O/calibrate-rollback.out 2>&1; t2=$(now)
echo "$t0 $t1 $t2" >$O/calibrate
apply_us=$(( (t1 - t0) * 12000 + 1 )); rollback_us=$(( (t2 - t1) * 12000 + 1 ))
i=0
while [ $i -lt {trials} ]; do
    d=$O/$i; mkdir -p $d
    if [ $((i % 2)) = 0 ]; then mode=apply; cmd="apply /lab/crash.yaml"; span=$apply_us
    else mode=rollback; cmd=rollback; span=$rollback_us
        $SP apply /lab/crash.yaml >$d/setup.out 2>&1; fi
    $SP history --format json >$d/history-before.json 2>&1
    delay=$(( (RANDOM * 32768 + RANDOM) % span ))
    echo "$mode $delay" >$d/what
    $SP $cmd >/dev/null 2>&1 &
    pid=$!
    usleep $delay
    kill -9 $pid 2>/dev/null
    wait $pid
    echo $? >$d/killed.rc
    $SP recover >$d/recover.out 2>&1; echo $? >$d/recover.rc
    snap >$d/values
    $SP history --format json >$d/history.json 2>&1
    $SP status --format json >$d/status.json 2>&1
    cmp -s $d/values $O/old || $SP rollback >$d/reset.out 2>&1
    snap | cmp -s - $O/old && echo old >$d/reset || echo not-old >$d/reset
    i=$((i + 1))
done
"""


class Crash:
    """SIGKILL of apply/rollback at random points, then recover."""

    name = "crash"
    timeout = 240

    def files(self, ctx):
        """The profile (the schema dir comes with the globals step's files)."""
        text = profile_yaml("lab-crash", "Keys the kill -9 trials apply and roll back.", KEYS)
        return {"lab/crash.yaml": text.encode(), **ctx.lab_schema_files()}

    def script(self, ctx):
        """The calibration and the trials."""
        keys = [k for k, _, _ in KEYS]
        return SCRIPT.format(keys=" ".join(keys), trials=TRIALS)

    def analyze(self, ctx, out):
        """One check for the calibration, one per trial."""
        keys = [k for k, _, _ in KEYS]
        old, new = _snap(out, "old"), _snap(out, "new")
        want = {k: str(v) for k, v, _ in KEYS}
        calibrated = all(same_value(new.get(k), want[k]) for k in keys) and \
            all(old.get(k) not in (None, "") for k in keys)
        checks = [Check("kill -9: calibration apply", calibrated,
                        f"applied {new}, wanted {want}; "
                        f"{(out.text('calibrate-apply.out') or '')[-300:]}")]
        if not calibrated:
            return checks
        for i in range(TRIALS):
            checks.append(self._trial(out, i, keys, old, want))
        return checks

    def _trial(self, out, i, keys, old, want):
        what = (out.text(f"{i}/what") or "? ?").split()
        mode, delay = what[0], what[-1]
        name = f"kill -9 {mode} #{i} after {int(delay) // 1000 if delay.isdigit() else '?'} ms"
        values = _snap(out, f"{i}/values")
        if all(values.get(k) == old[k] for k in keys):
            state = "old"
        elif all(same_value(values.get(k), want[k]) for k in keys):
            state = "new"
        else:
            return Check(name, False, f"mixed state after recover: {values}")
        problems = []
        if out.rc(f"{i}/recover.rc") != 0:
            problems.append(f"recover exit {out.rc(f'{i}/recover.rc')}: "
                            f"{(out.text(f'{i}/recover.out') or '')[-200:]}")
        problems += _history_problems(out, i, mode, state)
        status = out.json(f"{i}/status.json") or {}
        if status.get("unfinished"):
            problems.append(f"status still shows an unfinished change: {status['unfinished']}")
        if (out.text(f"{i}/reset") or "").strip() != "old":
            problems.append("could not get back to the old values for the next trial")
        return Check(name, not problems, f"kernel {state}; " + "; ".join(problems))


def _snap(out, name):
    """A ``snap`` file: {key: value} (exact text, newline dropped)."""
    pairs = (line.split("\t", 1) for line in (out.text(name) or "").splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def _history_problems(out, i, mode, state):
    before = (out.json(f"{i}/history-before.json") or {}).get("entries")
    after = (out.json(f"{i}/history.json") or {}).get("entries")
    if before is None or after is None:
        return ["history --format json unreadable"]
    added = len(after) - len(before)
    last = after[-1] if after else None
    last_kind = last and last["record"]["kind"]
    if mode == "apply":
        expect = (1, "apply") if state == "new" else (0, None)
    else:
        expect = (1, "rollback") if state == "old" else (0, None)
    if added != expect[0] or (expect[1] and last_kind != expect[1]):
        return [f"history has {added} new entr{'y' if added == 1 else 'ies'} "
                f"(last: {last_kind}) for a kernel left {state} by a killed {mode}"]
    if mode == "apply" and state == "new" and not last.get("in_effect"):
        return ["the apply's history entry is not in effect although its values are"]
    return []
