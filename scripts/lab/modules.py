"""Kernel modules for the guest: which ones, their dependencies, and decompressed copies.

``modules.dep`` of the package gives each module's dependencies (already transitive); a module
is loaded after everything it depends on. Debian compresses modules from 6.x on (``.ko.xz``,
possibly ``.ko.zst``); busybox ``insmod`` takes plain ELF objects, so they are decompressed on
the host. Modules built into the kernel (``modules.builtin``) need no loading.

The guest loads the *sysctl modules*: every module whose object file references one of the
kernel's sysctl registration functions (found by scanning the symbol names, so a new kernel's
new modules are picked up without editing a list), plus a few named in the lab's brief that
change what sysctls hold (loggers, helpers). Hardware-only drivers that register sysctls
(Hyper-V's bus, InfiniBand) are left out: they need devices the guest does not have.
"""

import json
import lzma
import re
import subprocess
from pathlib import Path

from .kernels import LabError

# Needed to reach the optional disks (virtio PCI, block) and its file system (ext4 is built
# into Debian's cloud kernels; listed in case a kernel has it modular).
DISK_MODULES = ["virtio_pci", "virtio_blk", "ext4"]

# The lab suite's own needs (conntrack, bridge netfilter, IPVS), and modules the catalogue work
# wants loaded although they register no sysctl table of their own.
SUITE_MODULES = ["nf_conntrack", "br_netfilter", "bridge", "ip_vs"]
EXTRA_INTROSPECT = [
    "nf_log_syslog", "nf_log_ipv4", "nf_log_ipv6", "nf_log_arp", "nf_log_bridge",
    "nf_log_netdev", "ts_kmp", "ts_bm", "ts_fsm", "nf_conntrack_ftp", "nf_conntrack_irc", "nf_conntrack_sip",
    "nf_conntrack_tftp", "nf_conntrack_h323", "nf_conntrack_pptp", "nf_conntrack_amanda",
    "nf_conntrack_netbios_ns", "nf_conntrack_snmp", "nf_conntrack_sane",
    "nf_conntrack_bridge", "nf_conntrack_netlink", "nf_tables", "xfrm_user", "mptcp_diag",
    "tcp_bbr", "tcp_htcp", "8021q", "sctp", "dccp", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh",
]
# Modules that register sysctls but only make sense with hardware the guest lacks.
NEVER_LOAD = {"hv_vmbus", "iw_cm", "rdma_ucm", "rpcrdma", "rds_rdma", "ib_core", "rdma_cm"}

_SYSCTL_SYMBOL = re.compile(
    rb"\0(?:__)?register_(?:net_)?sysctl(?:_table|_sz|_paths)?\0")
_MODINFO = re.compile(rb"(?<=\0)(depends|softdep)=([^\0]*)\0")
_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def _modinfo_deps(elf):
    """Hard dependencies, then "pre" soft dependencies (prefixed with ``?``: may be absent)."""
    hard, soft = [], []
    for field, value in _MODINFO.findall(elf):
        if field == b"depends":
            hard += [d for d in value.decode().split(",") if d]
            continue
        in_pre = False  # softdep=pre: a b post: c -- only the "pre" ones must load first
        for word in value.decode().split():
            if word.endswith(":"):
                in_pre = word == "pre:"
            elif in_pre:
                soft.append("?" + word)
    return [d.replace("-", "_") for d in hard + soft]


def module_name(path):
    """The module name of a file name (dashes read as underscores, as the kernel does)."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.replace("-", "_")


class ModuleTree:
    """The /lib/modules/<uname -r> tree of one kernel package.

    Debian's package ships no modules.dep (depmod writes it at install time), so dependencies
    are read from each object's ``.modinfo`` (``depends=`` and ``softdep=pre:``); the scan is
    cached beside the tree.
    """

    def __init__(self, root):
        self.root = root
        self.paths = {}
        for path in sorted(root.rglob("*.ko*")):
            if path.name.endswith(_SUFFIXES):
                self.paths[module_name(path)] = path.relative_to(root)
        builtin = root / "modules.builtin"
        self.builtin = {module_name(p) for p in builtin.read_text().split()} \
            if builtin.is_file() else set()
        self.deps, self.sysctls = self._scan()

    def _scan(self):
        cache = self.root.parent / f".lab-modules-{self.root.name}.json"
        if cache.is_file():
            data = json.loads(cache.read_text())
            return data["deps"], set(data["sysctls"])
        deps, sysctls = {}, []
        for name in self.paths:
            elf = self.read(name)
            deps[name] = _modinfo_deps(elf)
            if _SYSCTL_SYMBOL.search(elf):
                sysctls.append(name)
        cache.write_text(json.dumps({"deps": deps, "sysctls": sysctls}))
        return deps, set(sysctls)

    def load_order(self, names):
        """The files to insmod for these modules, dependencies first, each once."""
        order, seen = [], set()

        def visit(name):
            optional = name.startswith("?")
            name = name.lstrip("?")
            if name in seen or name in self.builtin:
                return
            if name not in self.paths:
                if optional:
                    return
                raise LabError(f"{self.root}: no module {name}")
            seen.add(name)
            for dep in self.deps[name]:
                visit(dep)
            order.append(name)

        for name in names:
            visit(name.replace("-", "_"))
        return order

    def known(self, name):
        """Whether the module exists (as a file or built in)."""
        name = name.replace("-", "_")
        return name in self.paths or name in self.builtin

    def read(self, name):
        """The module's ELF object, decompressed."""
        path = self.root / self.paths[name]
        data = path.read_bytes()
        if path.name.endswith(".xz"):
            return lzma.decompress(data)
        if path.name.endswith(".zst"):
            return subprocess.run(["zstd", "-dc", str(path)], capture_output=True,
                                  check=True).stdout
        if path.name.endswith(".gz"):
            import gzip
            return gzip.decompress(data)
        return data

    def sysctl_modules(self):
        """Every loadable module that registers sysctls, plus the extras, minus hardware ones."""
        found = [n for n in sorted(self.paths)
                 if n not in NEVER_LOAD and n in self.sysctls]
        extras = [n for n in SUITE_MODULES + EXTRA_INTROSPECT
                  if n in self.paths and n not in found]
        return found + extras

    def require(self, names):
        """Raises when a module the suite needs is missing from the package."""
        missing = [n for n in names if not self.known(n)]
        if missing:
            raise LabError(f"{self.root}: modules not in the package: {', '.join(missing)}")
