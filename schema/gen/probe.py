#!/usr/bin/env python3
"""Probe the catalogue's kernel bounds of network-namespaced keys on the running kernel.

    probe.py [--json OUT]      (gen/probe/<release>.json keeps the tally of each kernel probed)

For every writable integer net.* entry whose scope is netns (curated keys.yaml and generated
catalogue.yaml), inside a throwaway network namespace: write the minimum and the maximum (both
must be accepted), one below the minimum and one above the maximum (both must fail with
EINVAL), then restore the original value. Jiffies keys (`hz: jiffies`) are probed at the
running kernel's HZ (INT_MAX / HZ either way). Prints the tally: probed, confirmed,
contradicted (with what the kernel did), skipped (with why).

Never writes the host's namespace: the probing half re-executes itself under `unshare --net`
and refuses to run when its network namespace is the initial one. The host's net.* values are
read before and after, and any change is reported as a failure.
"""

import argparse
import errno
import gzip
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import yamlish  # noqa: E402

SCHEMA = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INT_MAX = 2**31 - 1
# Keys whose bound can only be reached after moving another key out of the way first.
RELAX = {
    "net.ipv4.ip_local_port_range": [("net.ipv4.ip_unprivileged_port_start", "0")],
    "net.ipv4.ip_unprivileged_port_start": [("net.ipv4.ip_local_port_range", "65535 65535")],
}
# Values that move by themselves: not evidence of a write to the host.
VOLATILE = re.compile(r"nf_conntrack_count$|tcp_fastopen_key$|\.stable_secret$|route\.flush$|"
                      r"neigh\.[^.]+\.(unres_qlen|unres_qlen_bytes)$")


def entries():
    """Every entry of keys.yaml and catalogue.yaml."""
    out = []
    for name in ("keys.yaml", "catalogue.yaml"):
        with open(os.path.join(SCHEMA, name)) as f:
            out.extend(yamlish.load(f.read()) or [])
    return out


def path(key):
    """Dotted key (a `/` standing for a dot inside a component) -> /proc/sys path."""
    return "/proc/sys/" + "/".join(c.replace("/", ".") for c in key.split("."))


def read(key):
    """The value without its newline, or None."""
    try:
        with open(path(key)) as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def write(key, value):
    """None when accepted, else the errno name."""
    try:
        fd = os.open(path(key), os.O_WRONLY)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    try:
        os.write(fd, (value + "\n").encode())
        return None
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        os.close(fd)


def kernel_hz():
    """CONFIG_HZ of the running kernel, or None."""
    for candidate in ("/proc/config.gz", "/boot/config-" + os.uname().release):
        try:
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rt") as f:
                for line in f:
                    m = re.match(r"CONFIG_HZ=(\d+)$", line.strip())
                    if m:
                        return int(m.group(1))
        except OSError:
            continue
    return None


def instances(key):
    """The concrete keys a pattern is probed on (`all`/`default`/`lo` for interfaces)."""
    if "*" not in key:
        return [key] if os.path.exists(path(key)) else []
    out = []
    for name in ("all", "default", "lo"):
        concrete = key.replace("*", name)
        if os.path.exists(path(concrete)):
            out.append(concrete)
    return out


def bounds(entry, hz):
    """(min, max, why-not) of an entry, the jiffies limit applied at this HZ."""
    b = entry.get("kernel_bounds") or {}
    low, high = b.get("min"), b.get("max")
    if entry.get("hz") == "jiffies":
        if hz is None:
            return None, None, "jiffies key and CONFIG_HZ unknown"
        limit = INT_MAX // hz
        low = -limit if low is None else max(low, -limit)
        high = limit if high is None else min(high, limit)
    elif entry.get("hz"):
        return None, None, "%s conversion: bound not a simple function of HZ" % entry["hz"]
    if low is None and high is None:
        return None, None, "no kernel_bounds"
    return low, high, None


def render(entry, n, current):
    """The text written to probe `n`: every element of a tuple or range."""
    count = entry.get("len") or (2 if entry.get("shape") == "port_range" else 1)
    if entry.get("shape") in ("tuple", "port_range") and current:
        count = len(current.split())
    return " ".join([str(n)] * count)


def probe_entry(entry, hz, tally):
    """Probes one entry on each of its concrete keys."""
    key = entry["key"]
    if not key.startswith("net.") or entry.get("scope") != "netns":
        return
    if entry.get("read_only") or entry.get("trigger") or entry.get("shape") not in ("int", "bool", "tuple", "port_range", "enum"):
        return
    if entry.get("one_way"):
        # A one-way key cannot be restored; some of them are global behind a per-netns file.
        tally["skipped"].append("%s: one-way key, never written by the probe" % key)
        return
    low, high, why = bounds(entry, hz)
    if why:
        if entry.get("kernel_bounds") or entry.get("hz"):
            tally["skipped"].append("%s: %s" % (key, why))
        return
    names = instances(key)
    if not names:
        tally["skipped"].append("%s: not on this kernel (module not loaded or not built)" % key)
        return
    for name in names:
        original = read(name)
        if original is None:
            tally["skipped"].append("%s: unreadable" % name)
            continue
        if write(name, original) is not None:
            tally["skipped"].append("%s: not writable here (%s)" % (name, write(name, original)))
            continue
        tally["probed"] += 1
        relaxed = [(other, read(other)) for other, _ in RELAX.get(key, [])]
        for other, value in RELAX.get(key, []):
            write(other, value)
        checks = []
        if low is not None:
            checks += [(low, True), (low - 1, False)]
        if high is not None:
            checks += [(high, True), (high + 1, False)]
        for n, accepted in checks:
            result = write(name, render(entry, n, original))
            ok = result is None if accepted else result == "EINVAL"
            claim = "%s %s" % (n, "accepted" if accepted else "EINVAL")
            if ok:
                tally["confirmed"] += 1
            else:
                tally["contradicted"].append("%s: claims %s, kernel: %s" % (name, claim, result or "accepted"))
        for other, value in [(name, original)] + list(reversed(relaxed)):
            if value is not None and write(other, value) is not None:
                tally["harness"].append("%s: could not restore %r" % (other, value))


def child(out, host_ns):
    """The probing half: runs in the throwaway namespace (never the caller's)."""
    if os.stat("/proc/self/ns/net").st_ino == host_ns:
        sys.exit("refusing to probe: this is the caller's network namespace")
    hz = kernel_hz()
    tally = {"kernel": os.uname().release, "hz": hz, "probed": 0, "confirmed": 0,
             "contradicted": [], "skipped": [], "harness": []}
    for entry in entries():
        probe_entry(entry, hz, tally)
    with open(out, "w") as f:
        json.dump(tally, f, indent=1, sort_keys=True)


def host_net_values():
    """Every readable net.* value of the calling (host) namespace."""
    values = {}
    for top, dirs, files in os.walk("/proc/sys/net"):
        for name in files:
            p = os.path.join(top, name)
            key = ".".join(c.replace(".", "/") for c in os.path.relpath(p, "/proc/sys").split("/"))
            if VOLATILE.search(key):
                continue
            try:
                with open(p) as f:
                    values[key] = f.read()
            except OSError:
                pass
    return values


def main():
    """Runs the child under unshare and prints the tally."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the tally here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--host-ns", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.host_ns)
        return 0
    out = args.json or "/tmp/sysprof-probe-%d.json" % os.getpid()
    before = host_net_values()
    host_ns = str(os.stat("/proc/self/ns/net").st_ino)
    subprocess.run(["unshare", "--net", sys.executable, os.path.abspath(__file__), "--child", out,
                    "--host-ns", host_ns], check=True)
    after = host_net_values()
    changed = sorted(k for k in before if after.get(k) != before[k])
    with open(out) as f:
        tally = json.load(f)
    tally["host_changed"] = changed
    for field in ("contradicted", "skipped", "harness"):
        tally[field] = sorted(tally[field])
    with open(out, "w") as f:
        json.dump(tally, f, indent=1, sort_keys=True)
        f.write("\n")
    print("bounds probe on %s (HZ=%s): %d keys probed, %d claims confirmed, %d contradicted, %d skipped"
          % (tally["kernel"], tally["hz"], tally["probed"], tally["confirmed"],
             len(tally["contradicted"]), len(tally["skipped"])))
    for line in tally["contradicted"]:
        print("  contradicted: " + line)
    for line in tally["skipped"]:
        print("  skipped: " + line)
    for line in tally["harness"]:
        print("  HARNESS: " + line)
    for key in changed:
        print("  HOST VALUE CHANGED: " + key)
    return 1 if tally["contradicted"] or tally["harness"] or changed else 0


if __name__ == "__main__":
    sys.exit(main())
