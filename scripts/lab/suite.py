"""The lab suite: three boots per kernel sharing one persistent disk, then a tally.

Boot 1 (all sysctl modules loaded): dump /proc/sys for the validate agreement, global keys
applied and rolled back, kill -9 trials, the persisted apply the next boot checks, and last the
bounds probe (the step most likely to upset a kernel). Boot 2 (a reboot: same disk, boot-time
``sysctl --system``): what boot reproduced, drift, boot-override warnings; then an apply with
``--confirm-within`` left pending. Boot 3 (another reboot): the pending change is gone from the
kernel and the next sysprof command records the rollback.

Each step runs in the guest under a timeout of its own, with its output in /out/<step>/; a step
that overruns is killed and fails, the others still count.
"""

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import vm
from .kernels import LabError, log
from .steps import Check, Context, Out
from .steps.agreement import Agreement
from .steps.bounds import Bounds
from .steps.crash import Crash
from .steps.globals import Globals
from .steps.reboot import BootAfter, BootSetup, ConfirmApply, ConfirmAfterReboot

TEST_MACHINE = vm.Machine(512, 1)
BOOT_MARGIN = 90  # seconds a boot may take beyond its steps' own timeouts


@dataclass
class KernelReport:
    """The result of the suite on one kernel."""
    release: str
    uname_r: str = "?"
    checks: list = field(default_factory=list)
    boot_seconds: list = field(default_factory=list)
    kernel_seconds: list = field(default_factory=list)
    step_seconds: dict = field(default_factory=dict)
    bounds: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self):
        """Number of checks that held."""
        return sum(c.ok for c in self.checks)

    @property
    def failed(self):
        """Number of checks that did not."""
        return sum(not c.ok for c in self.checks)

    def median_boot(self):
        """Median seconds from qemu start to the command, or None."""
        return statistics.median(self.boot_seconds) if self.boot_seconds else None


def run_kernel(kernel, sysprof, stream=None, keep=None):
    """Runs every step on one kernel and returns its :class:`KernelReport`."""
    started = time.monotonic()
    ctx = Context(kernel=kernel, sysprof=Path(sysprof), machine=TEST_MACHINE)
    ctx.schema = _schema_json(ctx)
    report = KernelReport(kernel.release, kernel.uname_r)
    confirm = ConfirmApply()
    bounds = Bounds()
    boots = [
        ("boot 1", [Agreement(), Globals(), Crash(), BootSetup(), bounds], "@all"),
        ("boot 2 (reboot)", [BootAfter(), confirm], "@suite"),
        ("boot 3 (reboot)", [ConfirmAfterReboot(confirm)], "@suite"),
    ]
    with tempfile.TemporaryDirectory(prefix="kernel-lab-disk-") as tmp:
        disk = vm.make_disk(Path(tmp) / "persist.img", 64)
        for label, steps, modules in boots:
            report.checks += run_boot(ctx, report, label, steps, disk, modules, stream, keep)
    report.bounds = bounds.tally
    report.notes = list(dict.fromkeys(ctx.notes))
    report.seconds = time.monotonic() - started
    return report


def _schema_json(ctx):
    proc = ctx.host_sysprof("schema", "--format", "json")
    if proc.returncode != 0:
        raise LabError(f"sysprof schema --format json failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def _step_seconds(lines):
    started, out = {}, {}
    for line in lines:
        words = line.split()
        if line.startswith("@@STEP ") and len(words) == 3:
            started[words[1]] = float(words[2])
        elif line.startswith("@@STEP-DONE ") and len(words) == 4 and words[1] in started:
            out[words[1]] = float(words[3]) - started[words[1]]
    return out


def _keep(keep, ctx, label, result):
    """Saves a boot's console and /out files under KEEP/<release>/<boot>/."""
    base = Path(keep) / ctx.kernel.release / label.split(" (")[0].replace(" ", "")
    base.mkdir(parents=True, exist_ok=True)
    (base / "console.log").write_text("\n".join(result.console) + "\n")
    for name, data in result.files.items():
        path = base / "out" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_boot(ctx, report, label, steps, disk, modules, stream, keep=None):
    """One boot running ``steps`` in order; returns their checks."""
    files, lines = {}, []
    for step in steps:
        files.update(step.files(ctx))
        files[f"lab/steps/{step.name}.sh"] = step.script(ctx).encode()
        lines += [
            f"echo \"@@STEP {step.name} $(cut -d' ' -f1 /proc/uptime)\"",
            f"mkdir -p /out/{step.name}",
            f"timeout -s KILL {step.timeout} sh -c '. /etc/lab/lib.sh; . /lab/steps/{step.name}.sh'"
            f" >/out/{step.name}/log 2>&1",
            f"echo $? >/out/{step.name}/step.rc",
            f"echo \"@@STEP-DONE {step.name} $(cat /out/{step.name}/step.rc)"
            f" $(cut -d' ' -f1 /proc/uptime)\"",
        ]
    timeout = sum(s.timeout for s in steps) + BOOT_MARGIN
    log(f"{ctx.kernel.release}: {label}: {', '.join(s.name for s in steps)}")
    try:
        result = vm.boot(ctx.kernel, "\n".join(lines), files=files, disk=disk, out=True,
                         machine=TEST_MACHINE, modules=modules, timeout=timeout,
                         sysprof=ctx.sysprof, stream=stream)
    except LabError as err:
        ctx.notes.append(f"{label} failed: {str(err).splitlines()[0]}")
        log(str(err))
        return [Check(f"{label}: {s.name}", False, str(err).splitlines()[0]) for s in steps]
    report.boot_seconds.append(result.boot_seconds)
    report.kernel_seconds.append(result.kernel_seconds)
    report.step_seconds.update(_step_seconds(result.output))
    if keep:
        _keep(keep, ctx, label, result)
    checks = []
    for step in steps:
        out = Out(result.files, step.name)
        rc = out.rc("step.rc")
        if rc is None or rc == 137:
            why = "killed by its timeout" if rc == 137 else "never finished"
            checks.append(Check(f"{step.name} step", False,
                                f"{why} ({step.timeout} s); log tail: "
                                f"{(out.text('log') or '')[-300:]}"))
        checks += step.analyze(ctx, out)
    return checks
