#!/usr/bin/env python3
"""Stage 1 of the catalogue generator: kernel sources -> schema/gen/extracted/<release>.json.

    extract.py fetch [RELEASE...]     download Debian's linux-source-<release> packages and unpack
                                      their C sources and documentation into the cache
    extract.py extract [RELEASE...]   read every sysctl table and sysctl document of the unpacked
                                      trees and write extracted/<release>.json

The cache (default /var/cache/sysprof-gen, `--cache`) lives outside the repository: apt state,
downloaded .debs and unpacked trees. `fetch` uses a temporary sources list and private apt state
directories, with the mirrors this machine's apt configuration already names, so nothing about
the machine's own apt setup changes. The JSON output is compact, key-sorted and deterministic.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import docs  # noqa: E402
import tables  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# Covered releases and the Debian suite whose linux-source-<release> package carries them. The
# suite is the one the kernel lab boots its kernel from (KERNELS in scripts/lab/kernels.py: the
# point release, not the security suite), so the catalogue's facts are those of the kernel the
# lab checks them on: stable updates change tables (bounds added to conntrack, tcp_reordering,
# tty ldisc_autoload in 5.10.2xx), and a newer source than the booted kernel disagrees with it.
RELEASES = {
    "5.10": ("bullseye",),
    "6.1": ("bookworm",),
    "6.12": ("trixie",),
    "7.2": ("sid",),
}
FORMAT = 1


def mirrors():
    """(debian mirror, security mirror) from this machine's apt sources."""
    uris = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            text = f.read()
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split():
                for uri in fields.get("URIs", "").split():
                    uris.append((uri.rstrip("/"), fields.get("Suites", "")))
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            with open(path) as f:
                for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", f.read(), re.M):
                    uris.append((m.group(1).rstrip("/"), m.group(2)))
    main = next((u for u, s in uris if "security" not in u and "security" not in s), None)
    security = next((u for u, s in uris if "security" in u or "security" in s), None)
    if main is None:
        sys.exit("error: no Debian mirror in /etc/apt/sources*; configure apt first")
    return main, security or main.replace("/debian", "/debian-security")


def apt_options(cache):
    """apt options that keep every piece of state under the cache directory."""
    state = os.path.join(cache, "apt")
    return ["-o", "Dir::Etc::SourceList=" + os.path.join(state, "sources.list"),
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", "Dir::State::Lists=" + os.path.join(state, "lists"),
            "-o", "Dir::State::Status=" + os.path.join(state, "status"),
            "-o", "Dir::Cache=" + os.path.join(state, "cache"),
            "-o", "Dir::Etc::Preferences=/dev/null",
            "-o", "Dir::Etc::PreferencesParts=" + os.path.join(state, "preferences.d")]


def fetch(cache, releases):
    """Downloads and unpacks linux-source-<release> for each release."""
    state = os.path.join(cache, "apt")
    for sub in ("lists/partial", "cache/archives/partial", "preferences.d"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    open(os.path.join(state, "status"), "a").close()
    main, security = mirrors()
    lines = []
    for suites in RELEASES.values():
        for suite in suites:
            uri = security if suite.endswith("-security") else main
            lines.append("deb %s %s main\n" % (uri, suite))
    with open(os.path.join(state, "sources.list"), "w") as f:
        f.writelines(sorted(set(lines)))
    opts = apt_options(cache)
    subprocess.run(["apt-get"] + opts + ["update", "-qq"], check=True)
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    for release in releases:
        package = "linux-source-%s/%s" % (release, RELEASES[release][0])
        before = set(os.listdir(debs))
        subprocess.run(["apt-get"] + opts + ["download", package], check=True, cwd=debs)
        got = sorted(set(os.listdir(debs)) - before) or [candidate_deb(cache, opts, release)]
        unpack(cache, release, os.path.join(debs, got[0]))


def candidate_deb(cache, opts, release):
    """The file name of the suite's linux-source-<release> (already in the cache)."""
    suite = RELEASES[release][0]
    text = subprocess.run(["apt-cache"] + opts + ["show", "linux-source-%s/%s" % (release, suite)],
                          check=True, capture_output=True, text=True).stdout
    version = re.search(r"^Version:\s*(\S+)", text, re.M).group(1)
    return "linux-source-%s_%s_all.deb" % (release, version.replace(":", "%3a"))


def unpack(cache, release, deb):
    """Unpacks one downloaded linux-source-<release> package into <cache>/src/<release>."""
    target = os.path.join(cache, "src", release)
    if not os.path.exists(deb):
        sys.exit("error: %s is not in the cache; run fetch" % deb)
    stamp = os.path.join(target, ".package")
    if os.path.exists(stamp) and open(stamp).read().strip() == os.path.basename(deb):
        return
    tmp = tempfile.mkdtemp(dir=cache)
    try:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        tarball = glob.glob(os.path.join(tmp, "usr/src/linux-source-*.tar.*"))[0]
        part = target + ".part"
        shutil.rmtree(part, ignore_errors=True)
        os.makedirs(part)
        subprocess.run(["tar", "-xf", tarball, "-C", part, "--strip-components=1", "--wildcards",
                        "*.c", "*.h", "*.rst", "*.txt", "*/Makefile", "*/Kconfig*"], check=True)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(part, target)
        with open(stamp, "w") as f:
            f.write(os.path.basename(deb) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def deb_version(path):
    """Sort key of a .deb by its numeric version parts."""
    version = os.path.basename(path).split("_")[1]
    return [int(n) for n in re.findall(r"\d+", version)]


def package_of(cache, release):
    """The package file a tree was unpacked from (linux-source-6.1_6.1.192-3_all.deb)."""
    stamp = os.path.join(cache, "src", release, ".package")
    if os.path.exists(stamp):
        return open(stamp).read().strip()
    debs = sorted(glob.glob(os.path.join(cache, "debs", "linux-source-%s_*.deb" % release)),
                  key=deb_version)
    return os.path.basename(debs[-1]) if debs else None


def extract(cache, release, out_dir):
    """Writes extracted/<release>.json from the unpacked tree."""
    root = os.path.join(cache, "src", release)
    if not os.path.isdir(root):
        sys.exit("error: %s is not unpacked; run `extract.py fetch %s`" % (root, release))
    tree = tables.Tree(root)
    keys, problems = tables.records(tree)
    result = {
        "format": FORMAT,
        "release": release,
        "package": package_of(cache, release),
        "suites": list(RELEASES.get(release, ())),
        "keys": keys,
        "docs": docs.parse_tree(root),
        "unresolved_registrations": sorted(problems),
    }
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, release + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, sort_keys=True, indent=0, separators=(",", ":"))
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("%s: %d keys, %d documented, %d unresolved registrations"
          % (path, len(keys), len(result["docs"]), len(problems)))


def main():
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "extract"])
    parser.add_argument("releases", nargs="*", default=list(RELEASES))
    parser.add_argument("--cache", default="/var/cache/sysprof-gen")
    parser.add_argument("--out", default=os.path.join(HERE, "extracted"))
    args = parser.parse_args()
    for release in args.releases:
        if release not in RELEASES:
            sys.exit("error: %s is not a covered release (%s); add it to RELEASES"
                     % (release, ", ".join(RELEASES)))
    if args.command == "fetch":
        fetch(args.cache, args.releases)
    else:
        for release in args.releases:
            extract(args.cache, release, args.out)


if __name__ == "__main__":
    main()
