"""The guest's root file system, built as newc cpio archives the kernel unpacks at boot.

Three archives are concatenated for each boot (the kernel accepts a concatenation):

1. the *base* (gzip, cached per kernel): busybox-static with its applet links, procps' dynamic
   ``sysctl`` with the shared libraries ``ldd`` lists and the loader, the init script and its
   helpers, and the kernel's modules (decompressed) with one load list per module;
2. the *sysprof* archive (cached per binary): the static sysprof of ``scripts/build-static``;
3. the *overlay* of one run: the command, its environment and the files a check needs.
"""

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from . import modules as mods
from .cpio import CpioWriter
from .kernels import LabError, cache_root, log

GUEST = Path(__file__).parent / "guest"
REPO = Path(__file__).resolve().parents[2]


def busybox_path():
    """A statically linked busybox (Debian's busybox-static) of the host."""
    for path in ["/bin/busybox", "/usr/bin/busybox"]:
        if Path(path).is_file() and not _needs_loader(path):
            return Path(path)
    raise LabError("no static busybox on this host: apt-get install busybox-static")


def sysctl_path():
    """procps' sysctl of the host (dynamically linked)."""
    found = shutil.which("sysctl") or "/usr/sbin/sysctl"
    if not Path(found).is_file():
        raise LabError("no sysctl on this host: apt-get install procps")
    return Path(found).resolve()


def _needs_loader(path):
    head = Path(path).read_bytes()[:4096]
    return b"/ld-linux" in head


def shared_libraries(binary):
    """The shared objects ``ldd`` lists for a binary, loader included (resolved paths)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            libs.append(match.group(1))
    return libs


@functools.cache
def build_static_sysprof():
    """Runs scripts/build-static and returns the binary's path.

    The target dir is ``$CARGO_TARGET_DIR/static-build`` (default ``target/static-build``), the
    one tests/static_build.rs uses, so the two share one build.
    """
    explicit = os.environ.get("SYSPROF_LAB_BINARY")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "static-build"
    log(f"building the static sysprof (scripts/build-static, {target})")
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    proc = subprocess.run([str(REPO / "scripts" / "build-static")], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"scripts/build-static failed:\n{proc.stderr.strip()}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def base_image(kernel):
    """The cached base archive of a kernel, built when missing or when an input changed."""
    tree = mods.ModuleTree(kernel.modules)
    tree.require(mods.SUITE_MODULES)
    wanted = [m for m in mods.DISK_MODULES if tree.known(m)] + tree.sysctl_modules()
    busybox, sysctl = busybox_path(), sysctl_path()
    guest_files = sorted(p for p in GUEST.iterdir() if p.is_file())
    key = _digest(kernel.package, *wanted, busybox.read_bytes(), sysctl.read_bytes(),
                  *(p.name.encode() + p.read_bytes() for p in guest_files))
    path = cache_root() / "initramfs" / kernel.uname_r / f"base-{key}.cpio.gz"
    if path.is_file():
        return path
    log(f"building the base initramfs for {kernel.uname_r}")
    cpio = CpioWriter()
    _skeleton(cpio)
    _add_busybox(cpio, busybox)
    _add_dynamic(cpio, sysctl, "usr/sbin/sysctl")
    for p in guest_files:
        dest = {"init": "init", "modprobe": "sbin/modprobe"}.get(p.name, f"etc/lab/{p.name}")
        cpio.file(dest, p.read_bytes(), 0o755)
    _add_modules(cpio, kernel, tree, wanted)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob("base-*.cpio.gz"):
        old.unlink()
    _write(path, cpio.render_gzip())
    return path


def _skeleton(cpio):
    for d in ["proc", "sys", "dev", "tmp", "run", "root", "persist", "out", "lab",
              "var/lib", "var/tmp", "etc/sysctl.d", "usr/lib/sysctl.d", "usr/local/bin"]:
        cpio.dir(d)
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, 0o666)
    cpio.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    cpio.file("etc/group", b"root:x:0:\n")
    cpio.file("etc/hostname", b"lab\n")
    cpio.file("etc/machine-id", b"6c61622d6d616368696e652d69640000\n", 0o444)


def _add_busybox(cpio, busybox):
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                         check=True).stdout
    for applet in out.split():
        # procps' sysctl must be the one on PATH (`sysctl --system`, as at boot); modprobe is the
    # lab's shim
        if Path(applet).name in ("sysctl", "modprobe") or applet == "bin/busybox":
            continue
        cpio.symlink(applet, "/bin/busybox")


def _add_dynamic(cpio, binary, dest):
    cpio.file(dest, binary.read_bytes(), 0o755)
    for lib in shared_libraries(binary):
        real = Path(lib).resolve()
        if lib.lstrip("/") not in cpio.names:
            cpio.file(lib.lstrip("/"), real.read_bytes(), 0o755)


def _add_modules(cpio, kernel, tree, wanted):
    base = f"lib/modules/{kernel.uname_r}"
    order = tree.load_order(wanted)
    for name in order:
        rel = re.sub(r"\.ko\.(xz|zst|gz)$", ".ko", str(tree.paths[name]))
        cpio.file(f"{base}/{rel}", tree.read(name))
    for name in wanted:
        files = [re.sub(r"\.ko\.(xz|zst|gz)$", ".ko", f"/{base}/{tree.paths[m]}")
                 for m in tree.load_order([name])]
        cpio.file(f"etc/lab/mod/{name}", ("\n".join(files) + "\n").encode())
    groups = {"disk": [m for m in mods.DISK_MODULES if m in tree.paths],
              "suite": mods.SUITE_MODULES,
              "all": [m for m in wanted if m not in mods.DISK_MODULES]}
    for group, names in groups.items():
        cpio.file(f"etc/lab/modgroup/{group}", (" ".join(names) + "\n").encode())
    meta = {"uname_r": kernel.uname_r, "package": kernel.package, "hz": kernel.hz}
    cpio.file("etc/lab/kernel.json", json.dumps(meta).encode())


def sysprof_image(binary):
    """The cached archive holding the static sysprof as /usr/bin/sysprof."""
    data = Path(binary).read_bytes()
    if _needs_loader(binary):
        raise LabError(f"{binary} is dynamically linked: the lab needs scripts/build-static")
    path = cache_root() / "initramfs" / f"sysprof-{_digest(data)}.cpio"
    if not path.is_file():
        cpio = CpioWriter()
        cpio.file("usr/bin/sysprof", data, 0o755)
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("sysprof-*.cpio"):
            old.unlink()
        _write(path, cpio.render())
    return path


def overlay(files):
    """An uncompressed archive of one run's files: {guest path: (bytes, mode)}."""
    cpio = CpioWriter()
    for name, (data, mode) in sorted(files.items()):
        cpio.file(name, data, mode)
    return cpio.render()


def _write(path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
