"""Kernels: which Debian suite provides which release, fetching them, and the on-disk cache.

The mirror is the one this machine's apt already uses (deb822 ``URIs:`` in
/etc/apt/sources.list.d/*.sources, or one-line entries in sources.list*): no host name is written
here. apt runs with a temporary sources list and private state and cache directories under the
lab cache, so the host's own apt lists and archives are never touched, and the archive
signatures are checked by apt as usual (Debian's keyring). A fetched kernel is unpacked with
``dpkg-deb -x`` into a directory named after its package and version; a pointer file per
release names the directory, so a warm cache needs no network at all.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# release -> Debian suite whose cloud kernel meta-package provides it. "sid" is resolved to
# whatever release sid carries today and cached under that release's name.
KERNELS = {
    "5.10": "bullseye",
    "6.1": "bookworm",
    "6.12": "trixie",
}
DEFAULT_KERNELS = ["5.10", "6.1", "6.12"]
EXTRA_SUITES = {"sid": "sid", "forky": "forky"}
META_PACKAGE = "linux-image-cloud-amd64"


class LabError(Exception):
    """A failure the lab reports in one line (no traceback)."""


def cache_root():
    """The lab cache: $SYSPROF_LAB_CACHE, else /var/cache/sysprof-lab."""
    return Path(os.environ.get("SYSPROF_LAB_CACHE") or "/var/cache/sysprof-lab")


def log(message):
    """Progress on stderr (stdout carries command output and results)."""
    print(f"kernel-lab: {message}", file=sys.stderr, flush=True)


# --- the host's mirror -----------------------------------------------------------------------

def debian_mirror(etc=Path("/etc/apt")):
    """The first Debian archive URI of the host's apt configuration (not the security one)."""
    uris = []
    for path in sorted(glob.glob(str(etc / "sources.list.d" / "*.sources"))):
        uris += _deb822_uris(Path(path).read_text())
    for path in [etc / "sources.list", *sorted(etc.glob("sources.list.d/*.list"))]:
        if Path(path).is_file():
            uris += _one_line_uris(Path(path).read_text())
    for uri, suites in uris:
        if not any(s.endswith("-security") for s in suites):
            return uri.rstrip("/")
    raise LabError(f"no Debian archive found in {etc}/sources.list{{,.d/}}: cannot fetch kernels")


def _deb822_uris(text):
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
            out += [(uri, fields.get("suites", [])) for uri in fields.get("uris", [])]
    return out


def _one_line_uris(text):
    out = []
    for line in text.splitlines():
        line = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(line) >= 3 and line[0] == "deb":
            out.append((line[1], [line[2]]))
    return out


# --- private apt ------------------------------------------------------------------------------

class PrivateApt:
    """apt-get/apt-cache with one suite, using directories below the lab cache only."""

    def __init__(self, root, mirror, suite):
        self.root = root / "apt" / suite
        self.suite = suite
        self.mirror = mirror

    def options(self):
        """The -o options that keep apt away from the host's lists and archives."""
        r = self.root
        return [
            "-o", f"Dir::Etc::sourcelist={r / 'sources.list'}",
            "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={r / 'lists'}",
            "-o", f"Dir::Cache={r / 'cache'}",
            "-o", f"Dir::Cache::Archives={r / 'archives'}",
            "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::Languages=none",
            "-o", "APT::Architecture=amd64",
        ]

    def update(self):
        """Fetches the suite's package index (signature checked by apt)."""
        for sub in ["lists/partial", "cache", "archives/partial"]:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "sources.list").write_text(
            f"deb [arch=amd64] {self.mirror} {self.suite} main\n")
        log(f"apt-get update ({self.suite}, {self.mirror}, private lists)")
        self._run(["apt-get", *self.options(), "-q", "update"])

    def show(self, package):
        """The fields of the package's newest version, as a dict."""
        out = self._run(["apt-cache", *self.options(), "show", "--no-all-versions", package])
        fields = {}
        for line in out.splitlines():
            if line and not line[0].isspace() and ":" in line:
                name, _, value = line.partition(":")
                fields.setdefault(name, value.strip())
        return fields

    def download(self, package, version, into):
        """Downloads one .deb into a directory and returns its path."""
        into.mkdir(parents=True, exist_ok=True)
        log(f"downloading {package}={version}")
        self._run(["apt-get", *self.options(), "-q", "download", f"{package}={version}"],
                  cwd=into)
        debs = sorted(into.glob(f"{package}_*.deb"))
        if not debs:
            raise LabError(f"apt-get download {package}={version} left no .deb in {into}")
        return debs[-1]

    def _run(self, argv, cwd=None):
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LabError(f"{' '.join(argv[:1] + argv[-2:])} failed:\n{proc.stderr.strip()}")
        return proc.stdout


# --- the cache --------------------------------------------------------------------------------

class Kernel:
    """One unpacked kernel package in the cache."""

    def __init__(self, meta, root):
        self.meta = meta
        self.root = root

    @property
    def release(self):
        """major.minor, e.g. ``6.1``."""
        return self.meta["release"]

    @property
    def uname_r(self):
        """The kernel's ``uname -r``."""
        return self.meta["uname_r"]

    @property
    def package(self):
        """``name=version`` of the Debian package."""
        return f"{self.meta['package']}={self.meta['version']}"

    def _boot_file(self, name):
        # /boot/NAME-<uname -r>, or (newer packaging) /usr/lib/modules/<uname -r>/NAME
        for path in [self.root / "boot" / f"{name}-{self.uname_r}",
                     self.root / "usr/lib/modules" / self.uname_r / name]:
            if path.is_file():
                return path
        raise LabError(f"{self.package}: no {name} in the package")

    @property
    def vmlinuz(self):
        """Path of the kernel image."""
        return self._boot_file("vmlinuz")

    @property
    def modules(self):
        """The module tree, /lib/modules/<uname -r> of the package."""
        for lib in ["lib", "usr/lib"]:
            path = self.root / lib / "modules" / self.uname_r
            if path.is_dir():
                return path
        raise LabError(f"{self.package}: no modules directory for {self.uname_r}")

    def config(self):
        """The kernel's /boot/config-* as a dict of CONFIG_* values."""
        out = {}
        for line in self._boot_file("config").read_text().splitlines():
            if line.startswith("CONFIG_") and "=" in line:
                name, _, value = line.partition("=")
                out[name] = value
        return out

    @property
    def hz(self):
        """CONFIG_HZ of the kernel."""
        return int(self.config()["CONFIG_HZ"])


def pointer_path(release):
    """The file naming the cached package of a release."""
    return cache_root() / "kernels" / f"{release}.json"


def cached(release):
    """The cached kernel of a release, or None."""
    pointer = pointer_path(release)
    if not pointer.is_file():
        return None
    meta = json.loads(pointer.read_text())
    root = cache_root() / "kernels" / meta["dir"]
    if not (root / ".complete").is_file():
        return None
    return Kernel(meta, root)


def cached_releases():
    """Releases with a complete kernel in the cache, oldest first."""
    found = []
    for pointer in (cache_root() / "kernels").glob("*.json"):
        if cached(pointer.stem):
            found.append(pointer.stem)
    return sorted(found, key=version_key)


def version_key(release):
    """Sort key of a dotted version."""
    return tuple(int(p) for p in re.findall(r"\d+", release))


def fetch(name, refresh=False):
    """Returns the cached kernel for a release (or suite alias), downloading it when missing."""
    if not refresh:
        kernel = cached(name)  # a release (a suite alias such as "sid" is always resolved)
        if kernel:
            return kernel
    suite = KERNELS.get(name) or EXTRA_SUITES.get(name)
    if suite is None:
        known = ", ".join(list(KERNELS) + list(EXTRA_SUITES))
        raise LabError(f"unknown kernel {name!r}: known are {known} (see KERNELS in {__file__})")
    apt = PrivateApt(cache_root(), debian_mirror(), suite)
    apt.update()
    meta_fields = apt.show(META_PACKAGE)
    match = re.search(r"(linux-image-\S+)\s*\(=\s*([^)]+)\)", meta_fields.get("Depends", ""))
    if not match:
        raise LabError(f"{META_PACKAGE} in {suite}: unexpected Depends {meta_fields!r}")
    package, version = match.group(1), match.group(2).strip()
    return _unpack(apt, package, version, suite, name)


def _unpack(apt, package, version, suite, name):
    uname_r = package.removeprefix("linux-image-")
    release = ".".join(uname_r.split(".")[:2])
    if name in KERNELS and release != name:
        raise LabError(f"{suite} now ships {uname_r}, not {name}: update KERNELS")
    dirname = f"{package}_{version}"
    root = cache_root() / "kernels" / dirname
    if not (root / ".complete").is_file():
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        for part in [package, *_split_parts(apt, package, uname_r)]:
            deb = apt.download(part, version, cache_root() / "debs")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            deb.unlink()  # the unpacked tree is what the cache keeps
        (root / ".complete").write_text(version + "\n")
    meta = {"release": release, "uname_r": uname_r, "package": package, "version": version,
            "suite": suite, "dir": dirname}
    pointer = pointer_path(release)
    pointer.write_text(json.dumps(meta, indent=1) + "\n")
    log(f"kernel {release}: {package}={version} ({suite})")
    return Kernel(meta, root)


def _split_parts(apt, package, uname_r):
    """Packages of the same build the image depends on (newer Debian kernels split the image,
    the kernel binary and the modules: linux-binary-*, linux-modules-*, linux-base-*)."""
    depends = apt.show(package).get("Depends", "")
    return [m.group(1) for m in re.finditer(r"(linux-[a-z]+-" + re.escape(uname_r) +
                                            r")\s*\(=", depends)]
