"""One guest boot under qemu-system-x86_64: the command line, the console, disks, timeouts.

The guest's serial console is qemu's stdout. The init script prints a begin marker when the
run's command starts and an exit-status marker when it ends, both carrying a random nonce so
no output can fake them. Every boot has a hard timeout: qemu is killed (SIGKILL), waited for and
the failure reported with the console's tail. qemu also gets SIGKILL if this process dies
(PR_SET_PDEATHSIG), so no qemu outlives the lab.

TCG is the default accelerator. KVM is used only when a probe (a real lab boot under KVM with a
short timeout) succeeded on this host boot; the result is cached per host boot id.
"""

import ctypes
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import initramfs
from .kernels import LabError, cache_root, log

QEMU = "qemu-system-x86_64"
APPEND = "console=ttyS0 panic=-1 quiet loglevel=3 mitigations=off rdinit=/init"
OUT_DISK_MIB = 64
KVM_PROBE_TIMEOUT = 25


class BootTimeout(LabError):
    """A boot that did not finish in time (qemu was killed)."""


@dataclass
class Machine:
    """The guest's size."""
    mem_mib: int = 512
    cpus: int = 1

    @staticmethod
    def parse(mem, cpus):
        """From ``--mem 512M|2G|2048`` and ``--cpus N``."""
        text = str(mem).upper().rstrip("B")
        factor = 1024 if text.endswith("G") else 1
        return Machine(int(float(text.rstrip("MG")) * factor), int(cpus))


@dataclass
class BootResult:
    """What one boot produced."""
    rc: int
    output: list = field(default_factory=list)   # the command's console lines
    console: list = field(default_factory=list)  # every console line
    files: dict = field(default_factory=dict)    # /out of the guest: name -> bytes
    kernel_seconds: float = 0.0                  # qemu start to the init script
    boot_seconds: float = 0.0                    # qemu start to the command's start
    total_seconds: float = 0.0

    def checks(self):
        """The ``@@CHECK ok|fail NAME -- DETAIL`` lines the command printed."""
        out = []
        for line in self.output:
            if line.startswith("@@CHECK "):
                result, _, rest = line[8:].partition(" ")
                name, _, detail = rest.partition(" -- ")
                out.append((name, result == "ok", detail))
        return out


def require_qemu():
    """Raises with the reason when qemu is not installed."""
    if not shutil.which(QEMU):
        raise LabError(f"{QEMU} not found: apt-get install qemu-system-x86")


def accelerator():
    """``kvm`` when $SYSPROF_LAB_ACCEL or a cached/new probe says so, else ``tcg``."""
    wanted = os.environ.get("SYSPROF_LAB_ACCEL", "auto")
    if wanted in ("tcg", "kvm"):
        return wanted
    return "kvm" if kvm_works() else "tcg"


def _host_boot_id():
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def kvm_works():
    """Whether a lab boot under KVM completes here (probed once per host boot)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cache = cache_root() / "kvm-probe.json"
    boot_id = _host_boot_id()
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("boot_id") == boot_id:
            return data["works"]
    from . import kernels
    releases = kernels.cached_releases()
    if not releases:
        return False
    kernel = kernels.cached(releases[0])
    log(f"probing KVM (a {KVM_PROBE_TIMEOUT} s boot of {kernel.uname_r})")
    try:
        result = boot(kernel, "echo kvm-ok", timeout=KVM_PROBE_TIMEOUT, accel="kvm",
                      sysprof=None)
        works = result.rc == 0 and "kvm-ok" in result.output
    except LabError as err:
        log(f"KVM probe failed ({str(err).splitlines()[0]}): using TCG")
        works = False
    cache.write_text(json.dumps({"boot_id": boot_id, "works": works}) + "\n")
    return works


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def boot(kernel, command, *, files=None, disk=None, out=False, machine=None, modules="",
         timeout=300, stream=None, accel=None, sysprof="build", verbose=False):
    """Boots ``kernel``, runs ``command`` (sh) in the guest and returns a :class:`BootResult`.

    ``files`` are extra guest files {path: bytes or (bytes, mode)}; ``disk`` an ext4 image
    attached as the persistent disk; ``out`` attaches an output disk whose tar stream becomes
    ``BootResult.files``; ``modules`` names modules (or ``@group``: disk, suite, all) loaded before the command.
    ``stream`` is called with each output line as it arrives.
    """
    require_qemu()
    machine = machine or Machine()
    accel = accel or accelerator()
    nonce = secrets.token_hex(8)
    env = {"LAB_NONCE": nonce, "LAB_DISK": int(disk is not None), "LAB_OUT": int(out),
           "LAB_MODULES": modules, "LAB_VERBOSE": int(verbose)}
    guest = {"etc/lab/run.env": ("".join(f"{k}='{v}'\n" for k, v in env.items()).encode(), 0o644),
             "etc/lab/cmd.sh": (b". /etc/lab/lib.sh\n" + command.encode() + b"\n", 0o755)}
    for name, value in (files or {}).items():
        guest[name.lstrip("/")] = value if isinstance(value, tuple) else (value, 0o644)
    with tempfile.TemporaryDirectory(prefix="kernel-lab-") as tmp:
        tmp = Path(tmp)
        initrd = tmp / "initrd"
        parts = [initramfs.base_image(kernel)]
        if sysprof:
            binary = initramfs.build_static_sysprof() if sysprof == "build" else sysprof
            parts.append(initramfs.sysprof_image(binary))
        with open(initrd, "wb") as f:
            for part in parts:
                f.write(part.read_bytes())
            f.write(initramfs.overlay(guest))
        argv = _qemu_argv(kernel, initrd, machine, accel, disk, tmp / "out.img" if out else None)
        result = _run(argv, nonce, timeout, stream, verbose)
        if out:
            result.files = _read_out_disk(tmp / "out.img")
    return result


def _qemu_argv(kernel, initrd, machine, accel, disk, out):
    argv = [QEMU, "-accel", accel if accel != "tcg" or machine.cpus == 1 else "tcg,thread=multi",
            "-m", str(machine.mem_mib), "-smp", str(machine.cpus),
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd),
            "-append", APPEND]
    if accel == "kvm":
        argv += ["-cpu", os.environ.get("SYSPROF_LAB_KVM_CPU", "host")]
    if disk is not None:
        argv += _virtio_disk(disk, "labdisk")
    if out is not None:
        with open(out, "wb") as f:
            f.truncate(OUT_DISK_MIB << 20)
        argv += _virtio_disk(out, "labout")
    return argv


def _virtio_disk(path, serial):
    # the serial is how the guest tells the disks apart
    return ["-drive", f"file={path},if=none,id={serial},format=raw,cache=unsafe",
            "-device", f"virtio-blk-pci,drive={serial},serial={serial}"]


def _run(argv, nonce, timeout, stream, verbose):
    init, begin, rc_mark, end = (f"@@LAB-{m}-{nonce}" for m in ("INIT", "BEGIN", "RC", "END"))
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    result = BootResult(rc=-1)
    state = "boot"
    try:
        for line in _lines(proc, start + timeout):
            result.console.append(line)
            if verbose and state != "cmd":
                print(f"[console] {line}", flush=True)
            if init in line:
                result.kernel_seconds = time.monotonic() - start
            elif begin in line:
                state, result.boot_seconds = "cmd", time.monotonic() - start
            elif rc_mark in line:
                state, result.rc = "done", int(line.split(rc_mark, 1)[1].strip(" @"))
            elif end in line:
                state = "end"
            elif state == "cmd":
                result.output.append(line)
                if stream:
                    stream(line)
        proc.wait(timeout=max(1, start + timeout - time.monotonic()))
    except (BootTimeout, subprocess.TimeoutExpired):
        raise BootTimeout(_failure(f"boot timed out after {timeout} s (qemu killed)", state,
                                   result)) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result.total_seconds = time.monotonic() - start
    if state not in ("done", "end"):
        raise LabError(_failure(f"qemu exited ({proc.returncode}) before the command finished",
                                state, result))
    return result


def _failure(what, state, result):
    last = next((line.strip() for line in reversed(result.console) if line.strip()), "")
    tail = "\n".join("  | " + line for line in result.console[-25:])
    return f"{what} (guest phase {state}): {last[:200]}\nConsole tail:\n{tail}"


def _lines(proc, deadline):
    """The console's lines (without CR) until qemu closes it; BootTimeout at the deadline."""
    fd = proc.stdout.fileno()
    pending = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BootTimeout("deadline")
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", "replace").rstrip("\r")


def _read_out_disk(path):
    files = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if member.isfile():
                    files[member.name.removeprefix("./")] = tar.extractfile(member).read()
    except tarfile.ReadError:
        pass  # nothing written
    return files


def make_disk(path, size_mib=64, content=None):
    """An ext4 image at ``path`` (mke2fs -d: no loop mount), seeded from a directory."""
    path = Path(path)
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    argv = ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "labdisk"]
    if content is not None:
        argv += ["-d", str(content)]
    proc = subprocess.run(argv + [str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"mke2fs failed: {proc.stderr.strip()}")
    return path
