"""Dumps of /proc/sys: every key's mode and value, in the initial namespaces and in a fresh
child network namespace, as the JSON the catalogue generator reads (format 1).

The guest runs ``dump.sh`` twice: as booted, and under ``unshare -n`` so that the modes are the
ones a child namespace sees (read-only-in-child keys show up that way). ``introspect`` runs one
boot per machine size, with every sysctl module of the kernel loaded, so values that depend on
memory or CPU count can be told apart.
"""

import json
import re
from pathlib import Path

from . import vm
from .kernels import LabError, log

FORMAT = 1
SIZES = [vm.Machine(512, 1), vm.Machine(2048, 2)]

def dump_script(out="/out/dump"):
    """Guest shell: the init and child-netns dumps and the loaded sysctl modules, into ``out``."""
    return f"""
mkdir -p {out}
sh /etc/lab/dump.sh {out}/init.tsv
unshare -n sh /etc/lab/dump.sh {out}/child.tsv
for m in $(cat /etc/lab/modgroup/all /etc/lab/modgroup/suite); do
    [ -d /sys/module/$m ] && echo $m
done | sort -u >{out}/modules
"""


def key_of(path):
    """The dotted key of a /proc/sys path; a dot inside a component becomes '/'."""
    rel = path.removeprefix("/proc/sys/")
    return ".".join(part.replace(".", "/") for part in rel.split("/"))


def _unescape(text):
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n"}.get(m.group(1), m.group(1)), text)


def parse_dump(text):
    """``dump.sh`` output -> {key: {"mode": "0644", "value": str or None}}."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t", 3)
        if len(parts) != 4:
            continue
        mode, path, status, value = parts
        out[key_of(path)] = {"mode": f"{int(mode, 8):04o}",
                             "value": _unescape(value) if status == "ok" else None}
    return dict(sorted(out.items()))


def writable(entry):
    """Whether a dumped key has any write permission bit."""
    return entry is not None and int(entry["mode"], 8) & 0o222 != 0


def document(kernel, machine, files):
    """The format-1 JSON document of one dump boot (``files``: the dump directory's files)."""
    init = files.get("init.tsv")
    child = files.get("child.tsv")
    if not init or not child:
        raise LabError(f"{kernel.uname_r}: the guest wrote no dump")
    return {
        "format": FORMAT,
        "release": kernel.release,
        "uname_r": kernel.uname_r,
        "package": kernel.package,
        "hz": kernel.hz,
        "memory_mib": machine.mem_mib,
        "cpus": machine.cpus,
        "modules": files.get("modules", b"").decode().split(),
        "init": parse_dump(init.decode("utf-8", "replace")),
        "child_netns": parse_dump(child.decode("utf-8", "replace")),
    }


def run(kernel, out_dir, sizes=None, timeout=600):
    """Boots the kernel once per size and writes DIR/<release>-m<MiB>-c<cpus>.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for machine in sizes or SIZES:
        log(f"introspect {kernel.uname_r} with {machine.mem_mib} MiB, {machine.cpus} CPU(s)")
        result = vm.boot(kernel, dump_script(), out=True, machine=machine, modules="@all",
                         timeout=timeout, sysprof=None)
        doc = document(kernel, machine, {name.removeprefix("dump/"): data
                                         for name, data in result.files.items()})
        path = out_dir / f"{kernel.release}-m{machine.mem_mib}-c{machine.cpus}.json"
        path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        log(f"wrote {path} ({len(doc['init'])} keys, {len(doc['child_netns'])} in a child "
            f"netns, {len(doc['modules'])} modules)")
        written.append(path)
    return written


def _host_hz(release):
    """CONFIG_HZ of the running kernel from /boot/config-* or /proc/config.gz, else None."""
    import gzip
    texts = []
    if Path(f"/boot/config-{release}").is_file():
        texts.append(Path(f"/boot/config-{release}").read_text())
    if Path("/proc/config.gz").is_file():
        texts.append(gzip.decompress(Path("/proc/config.gz").read_bytes()).decode())
    for text in texts:
        match = re.search(r"^CONFIG_HZ=(\d+)", text, re.M)
        if match:
            return int(match.group(1))
    return None


def host_document(out_dir):
    """The running host's own dump (reads only; the child namespace comes from unshare)."""
    import os
    import platform
    import subprocess
    from .initramfs import busybox_path
    script = Path(__file__).parent / "guest" / "dump.sh"
    # busybox's sh runs its own applets (find, awk) as in the guest; other awks stop at the
    # first unreadable file (EIO from net.ipv6.conf.*.stable_secret)
    shell = [str(busybox_path()), "sh", str(script), "/dev/stdout"]
    dumps = {}
    for name, prefix in [("init", []), ("child", ["unshare", "--net"])]:
        proc = subprocess.run(prefix + shell, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LabError(f"dump ({name}) failed: {proc.stderr.strip()}")
        dumps[name] = parse_dump(proc.stdout)
    release = platform.release()
    hz = _host_hz(release)
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    doc = {
        "format": FORMAT,
        "release": ".".join(release.split(".")[:2]),
        "uname_r": release,
        "package": None,
        "hz": hz,
        "memory_mib": mem // 1024,
        "cpus": os.cpu_count(),
        "modules": sorted(p.name for p in Path("/sys/module").iterdir()
                          if (p / "initstate").is_file()),
        "init": dumps["init"],
        "child_netns": dumps["child"],
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"host-{doc['release']}-m{doc['memory_mib']}-c{doc['cpus']}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {path} ({len(doc['init'])} keys)")
    return path
