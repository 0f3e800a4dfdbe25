"""The ``scripts/kernel-lab`` command line: fetch, run, test, introspect, mkdisk."""

import argparse
import os
import shlex
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import initramfs, introspect, kernels, suite, vm
from .kernels import LabError, log


def main(argv=None):
    """Entry point; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LabError as err:
        print(f"kernel-lab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def parser():
    """The argument parser (one sub-parser per command)."""
    p = argparse.ArgumentParser(prog="kernel-lab", description=__doc__)
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    f = sub.add_parser("fetch", help="download kernels and build their initramfs")
    f.add_argument("--kernel", default=",".join(kernels.DEFAULT_KERNELS),
                   help="comma list of releases (or suites: sid) [%(default)s]")
    f.add_argument("--all", action="store_true", help="every release in the kernel table")
    f.add_argument("--refresh", action="store_true", help="look for newer packages")
    f.set_defaults(func=cmd_fetch)

    r = sub.add_parser("run", help="boot a kernel and run a command in the guest")
    r.add_argument("--kernel", required=True)
    r.add_argument("--disk", type=Path, help="persistent ext4 image (created when missing)")
    r.add_argument("--mem", default="512M")
    r.add_argument("--cpus", type=int, default=1)
    r.add_argument("--modules", default="", help="modules or @groups (disk, suite, all) to load")
    r.add_argument("--timeout", type=int, default=300, help="hard limit per boot, seconds")
    r.add_argument("--verbose", action="store_true", help="show the console before the command")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD...")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("test", help="run the lab suite on every cached kernel")
    t.add_argument("--kernel", help="comma list of releases (default: cached and default ones)")
    t.add_argument("--verbose", action="store_true", help="print every check and guest step")
    t.add_argument("--keep", type=Path, help="save each boot's console and /out files here")
    t.add_argument("--jobs", type=int, default=default_jobs(),
                   help="kernels tested at once (one qemu each) [%(default)s]")
    t.set_defaults(func=cmd_test)

    i = sub.add_parser("introspect", help="dump /proc/sys of a kernel as JSON")
    i.add_argument("--kernel", help="comma list of releases")
    i.add_argument("--host", action="store_true", help="dump this host instead (read-only)")
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--sizes", default="512x1,2048x2", help="MiBxCPUS list [%(default)s]")
    i.set_defaults(func=cmd_introspect)

    d = sub.add_parser("mkdisk", help="make an ext4 image for run --disk (mke2fs -d)")
    d.add_argument("image", type=Path)
    d.add_argument("--from", dest="source", type=Path, help="directory to copy in")
    d.add_argument("--size", type=int, default=64, help="MiB [%(default)s]")
    d.set_defaults(func=cmd_mkdisk)
    return p


def default_jobs():
    """$SYSPROF_LAB_JOBS, else one qemu per CPU up to 3 (one TCG guest keeps one CPU busy)."""
    env = os.environ.get("SYSPROF_LAB_JOBS")
    return int(env) if env else max(1, min(3, os.cpu_count() or 1))


def _releases(text):
    return [r.strip() for r in text.split(",") if r.strip()]


def cmd_fetch(args):
    """Downloads kernels and builds every image a boot needs."""
    names = list(kernels.KERNELS) if args.all else _releases(args.kernel)
    binary = initramfs.build_static_sysprof()
    initramfs.sysprof_image(binary)
    for name in names:
        kernel = kernels.fetch(name, refresh=args.refresh)
        path = initramfs.base_image(kernel)
        print(f"{kernel.release}\t{kernel.uname_r}\t{kernel.package}\t{path}")
    return 0


def cmd_run(args):
    """Boots, streams the command's output, exits with its status."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("run needs a command: kernel-lab run --kernel X -- CMD...")
    kernel = kernels.fetch(args.kernel)
    if args.disk is not None and not args.disk.exists():
        vm.make_disk(args.disk)
        log(f"created {args.disk} (ext4, 64 MiB)")
    text = command[0] if len(command) == 1 else shlex.join(command)
    result = vm.boot(kernel, text, disk=args.disk, machine=vm.Machine.parse(args.mem, args.cpus),
                     modules=args.modules, timeout=args.timeout, verbose=args.verbose,
                     stream=lambda line: print(line, flush=True))
    log(f"{kernel.uname_r}: exit {result.rc}; boot {result.boot_seconds:.1f} s, "
        f"total {result.total_seconds:.1f} s")
    return result.rc


def cmd_test(args):
    """Runs the suite per kernel; the last lines are one summary per kernel."""
    names = _releases(args.kernel) if args.kernel else \
        sorted(set(kernels.cached_releases()) | set(kernels.DEFAULT_KERNELS),
               key=kernels.version_key)
    vm.require_qemu()
    started = time.monotonic()
    binary = initramfs.build_static_sysprof()
    initramfs.sysprof_image(binary)
    targets = []
    for name in names:  # downloads and image builds one at a time, before any boot
        kernel = kernels.fetch(name)
        initramfs.base_image(kernel)
        targets.append(kernel)
    accel = vm.accelerator()
    lock = threading.Lock()

    def one(kernel):
        stream = (lambda line: print(f"  [{kernel.release}] {line}", flush=True)) \
            if args.verbose else None
        report = suite.run_kernel(kernel, binary, stream=stream, keep=args.keep)
        with lock:
            _print_report(report, args.verbose)
        return report

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        reports = list(pool.map(one, targets))
    print(f"\nlab total: {time.monotonic() - started:.0f} s for {len(reports)} kernel(s), "
          f"accelerator {accel}, {args.jobs} at a time")
    for r in reports:
        median = r.median_boot()
        boots = ", ".join(f"{s:.1f}" for s in r.boot_seconds)
        kernel = statistics.median(r.kernel_seconds) if r.kernel_seconds else 0
        print(f"boot times {r.uname_r}: median {median:.1f} s per boot to the command ({boots}),"
              f" kernel alone {kernel:.1f} s; suite {r.seconds:.0f} s" if median
              else f"boot times {r.uname_r}: no boot")
    for r in reports:
        print(_bounds_line(r))
    for r in reports:
        print(f"lab {r.uname_r}: {r.passed} passed, {r.failed} failed")
    return 1 if any(r.failed for r in reports) or not reports else 0


def _print_report(report, verbose):
    print(f"== {report.uname_r} ({report.release}): {report.passed} passed, "
          f"{report.failed} failed")
    for note in report.notes:
        print(f"   note: {note}")
    steps = ", ".join(f"{name} {secs:.0f} s" for name, secs in report.step_seconds.items())
    print(f"   steps: {steps}")
    for check in report.checks:
        if verbose or not check.ok:
            mark = "ok  " if check.ok else "FAIL"
            detail = f" -- {check.detail}" if check.detail and not check.ok else ""
            print(f"   {mark} {check.name}{detail}")
    tally = report.bounds
    for line in tally.get("contradicted", []):
        print(f"   bounds contradicted: {line}")
    for key, reason in sorted(tally.get("skipped", {}).items()):
        print(f"   bounds skipped: {key}: {reason}")
    for key, note in sorted(tally.get("notes", {}).items()):
        print(f"   bounds note: {key}: {note}")
    sys.stdout.flush()


def _bounds_line(report):
    t = report.bounds
    if not t:
        return f"bounds {report.uname_r}: not probed"
    return (f"bounds {report.uname_r}: {t['probed']} keys probed, {t['confirmed']} claims "
            f"confirmed, {len(t['contradicted'])} contradicted, {len(t['skipped'])} skipped")


def cmd_introspect(args):
    """Writes the JSON dumps."""
    if args.host:
        introspect.host_document(args.out)
        return 0
    if not args.kernel:
        raise LabError("introspect needs --kernel X (or --host)")
    sizes = []
    for size in args.sizes.split(","):
        mem, _, cpus = size.partition("x")
        sizes.append(vm.Machine(int(mem), int(cpus or 1)))
    for name in _releases(args.kernel):
        introspect.run(kernels.fetch(name), args.out, sizes)
    return 0


def cmd_mkdisk(args):
    """Makes an ext4 image."""
    vm.make_disk(args.image, args.size, args.source)
    print(args.image)
    return 0
