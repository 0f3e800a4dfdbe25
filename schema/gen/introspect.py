#!/usr/bin/env python3
"""Dump every /proc/sys file of the running kernel, in the init netns and a fresh child netns.

Reading only: nothing under /proc/sys is written. The child-netns half runs this script again
under `unshare --net` (a fresh network namespace with only `lo`), because /proc/sys/net shows the
namespace of the reading task.

Output (format 1, the same as the kernel lab's dumps):

    {"format": 1, "release": "6.18", "uname_r": "...", "package": null, "hz": 250,
     "memory_mib": 24105, "cpus": 2, "modules": [...],
     "init": {"net.ipv4.tcp_fin_timeout": {"mode": "0644", "value": "60"}, ...},
     "child_netns": {...}}

Keys are dotted; a dot inside a component (interface eth0.100) is written as `/`. A value is null
when the file cannot be read (write-only files, EIO for unset secrets). Secrets are redacted.

Usage: introspect.py [--out DIR]   (writes DIR/<release>-m<MiB>-c<cpus>.json, prints the path)
       introspect.py --tree        (prints the tree of the calling task's namespaces as JSON)
"""

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys

ROOT = "/proc/sys"
# Files whose value is a secret of this machine: dumped with value null.
SECRETS = re.compile(r"^net\.ipv4\.tcp_fastopen_key$|\.stable_secret$")


def dotted(rel):
    """`net/ipv4/conf/eth0.100/rp_filter` -> `net.ipv4.conf.eth0/100.rp_filter`."""
    return ".".join(part.replace(".", "/") for part in rel.split("/"))


def read_value(path):
    """The file's text without the trailing newline, or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 20)
    except OSError:
        return None
    return data.decode("utf-8", "replace").rstrip("\n")


def tree():
    """{key: {"mode": "0644", "value": "..."}} for every file under /proc/sys."""
    out = {}
    for top, dirs, files in os.walk(ROOT):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            key = dotted(os.path.relpath(path, ROOT))
            try:
                mode = os.lstat(path).st_mode & 0o7777
            except OSError:
                continue
            value = None if SECRETS.search(key) else read_value(path)
            out[key] = {"mode": "%04o" % mode, "value": value}
    return out


def kernel_hz():
    """CONFIG_HZ from /proc/config.gz or /boot/config-$(uname -r), else None."""
    candidates = ["/proc/config.gz", "/boot/config-" + platform.release()]
    for path in candidates:
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as handle:
                for line in handle:
                    match = re.match(r"CONFIG_HZ=(\d+)$", line.strip())
                    if match:
                        return int(match.group(1))
        except OSError:
            continue
    return None


def memory_mib():
    """MemTotal in MiB."""
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return None


def modules():
    """Names of loaded modules (empty on a kernel without module support)."""
    try:
        with open("/proc/modules") as handle:
            return sorted(line.split()[0] for line in handle)
    except OSError:
        return []


def child_tree():
    """The tree as a fresh child network namespace sees it (via `unshare --net`)."""
    result = subprocess.run(
        ["unshare", "--net", sys.executable, os.path.abspath(__file__), "--tree"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def main():
    """Parses arguments and writes the dump."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "introspect"))
    parser.add_argument("--tree", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--package", default=None, help="the kernel package, if known")
    args = parser.parse_args()
    if args.tree:
        json.dump(tree(), sys.stdout, sort_keys=True)
        return
    uname_r = platform.release()
    release = ".".join(re.findall(r"\d+", uname_r)[:2])
    dump = {
        "format": 1,
        "release": release,
        "uname_r": uname_r,
        "package": args.package,
        "hz": kernel_hz(),
        "memory_mib": memory_mib(),
        "cpus": os.cpu_count(),
        "modules": modules(),
        "init": tree(),
        "child_netns": child_tree(),
    }
    name = "%s-m%d-c%d.json" % (release, dump["memory_mib"], dump["cpus"])
    path = os.path.join(args.out, name)
    os.makedirs(args.out, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(dump, handle, sort_keys=True, indent=0, separators=(",", ":"))
        handle.write("\n")
    print(path)


if __name__ == "__main__":
    main()
