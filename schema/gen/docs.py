"""Reads the kernel's sysctl documentation: which keys are documented, where, and the default
the text states.

Three layouts occur. Networking files list `name - TYPE` at column 0 with an indented body,
under section lines naming a /proc/sys directory. The admin-guide files use one heading per key
(`swappiness` underlined with `===`). A few files (xfs.rst) start lines with the full dotted key.
Only facts are kept (names, section, a stated default); no prose leaves this module.
"""

import os
import re

# (file under Documentation/, the citation prefix, the dotted prefix its keys live under).
DOC_FILES = [
    ("networking/ip-sysctl.rst", "ip-sysctl.rst", "net.ipv4"),
    ("networking/nf_conntrack-sysctl.rst", "nf_conntrack-sysctl.rst", "net.netfilter"),
    ("networking/netfilter-sysctl.rst", "networking/netfilter-sysctl.rst", "net.netfilter"),
    ("networking/mptcp-sysctl.rst", "networking/mptcp-sysctl.rst", "net.mptcp"),
    ("networking/ipvs-sysctl.rst", "networking/ipvs-sysctl.rst", "net.ipv4.vs"),
    ("networking/mpls-sysctl.rst", "networking/mpls-sysctl.rst", "net.mpls"),
    ("networking/seg6-sysctl.rst", "networking/seg6-sysctl.rst", "net.ipv6"),
    ("networking/ioam6-sysctl.rst", "networking/ioam6-sysctl.rst", "net.ipv6"),
    ("networking/smc-sysctl.rst", "networking/smc-sysctl.rst", "net.smc"),
    ("networking/xfrm/xfrm_sysctl.rst", "networking/xfrm_sysctl.rst", "net.core"),
    ("networking/xfrm_sysctl.rst", "networking/xfrm_sysctl.rst", "net.core"),
    ("networking/rds.rst", "networking/rds.rst", "net.rds"),
    ("admin-guide/sysctl/abi.rst", "admin-guide/sysctl/abi.rst", "abi"),
    ("admin-guide/sysctl/crypto.rst", "admin-guide/sysctl/crypto.rst", "crypto"),
    ("admin-guide/sysctl/debug.rst", "admin-guide/sysctl/debug.rst", "debug"),
    ("admin-guide/sysctl/fs.rst", "admin-guide/sysctl/fs.rst", "fs"),
    ("admin-guide/sysctl/kernel.rst", "admin-guide/sysctl/kernel.rst", "kernel"),
    ("admin-guide/sysctl/net.rst", "admin-guide/sysctl/net.rst", "net"),
    ("admin-guide/sysctl/sunrpc.rst", "admin-guide/sysctl/sunrpc.rst", "sunrpc"),
    ("admin-guide/sysctl/user.rst", "admin-guide/sysctl/user.rst", "user"),
    ("admin-guide/sysctl/vm.rst", "admin-guide/sysctl/vm.rst", "vm"),
    ("admin-guide/sysctl/xen.rst", "admin-guide/sysctl/xen.rst", "xen"),
    ("admin-guide/LSM/Yama.rst", "admin-guide/LSM/Yama.rst", "kernel.yama"),
    ("admin-guide/LSM/LoadPin.rst", "admin-guide/LSM/LoadPin.rst", "kernel.loadpin"),
    ("admin-guide/xfs.rst", "admin-guide/xfs.rst", "fs.xfs"),
    ("filesystems/xfs/xfs-maintainer-entry-profile.rst", None, None),
    ("admin-guide/mm/userfaultfd.rst", None, None),
    ("security/keys/core.rst", "security/keys/core.rst", "kernel.keys"),
    ("filesystems/fuse/fuse.rst", "filesystems/fuse.rst", "fs.fuse"),
    ("filesystems/fuse.rst", "filesystems/fuse.rst", "fs.fuse"),
    ("admin-guide/sysctl/index.rst", None, None),
]

UNDERLINE = re.compile(r"^([=\-~^*+#])\1{2,}\s*$")
ENTRY = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_/\-.*<>{}, ]*?)\s+-\s+\S")
SECTION_PATH = re.compile(r"(/?proc/sys/)?((?:[\w<>\-]+/)+)(?:\*|[\w]*\*)")


def parse_tree(root):
    """Every documented key of a tree: {dotted name: {"source", "default"?}}."""
    out = {}
    for rel, cite, prefix in DOC_FILES:
        path = os.path.join(root, "Documentation", rel)
        if cite is None or not os.path.exists(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        for name, anchor, body in entries(lines, prefix):
            record = {"source": "%s#%s" % (cite, anchor)}
            default = stated_default(body)
            if default is not None:
                record["default"] = default
            out.setdefault(name, record)
    return out


def entries(lines, prefix):
    """(dotted key, anchor, body lines) for each documented key of one file."""
    found = []
    top, current = prefix, prefix
    headings = heading_lines(lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        if i in headings or section_line(line):
            section = section_prefix(line, top)
            if section:
                if section[1]:
                    top = section[0]
                current = section[0]
            if i in headings and not section and heading_is_key(line):
                body = block(lines, i + 2, headings)
                for name in heading_names(line):
                    found.append((join(current, name), name, body))
            i += 2 if i in headings else 1
            continue
        dotted = re.match(r"^\s*((?:fs|kernel|vm|net|user|abi|debug|dev)\.[\w.\-]+)\s", line + " ")
        if dotted and prefix and dotted.group(1).startswith(prefix.split(".")[0] + "."):
            found.append((dotted.group(1), dotted.group(1).split(".")[-1], indented(lines, i + 1)))
        m = ENTRY.match(line)
        if m and not line.startswith((" ", "\t")):
            body = indented(lines, i + 1)
            for name in re.split(r"\s*,\s*|\s+and\s+", m.group(1)):
                name = name.strip()
                if re.match(r"^[\w/\-.<>*{}]+$", name):
                    found.append((join(current, name), name, body))
        i += 1
    return found


def heading_lines(lines):
    """Indexes of lines that are headings (a text line followed by an underline)."""
    out = set()
    for i in range(len(lines) - 1):
        if lines[i].strip() and not lines[i].startswith((" ", "\t")) and UNDERLINE.match(lines[i + 1]) \
                and not UNDERLINE.match(lines[i]):
            out.add(i)
    return out


def section_line(line):
    """Whether a column-0 line names a directory (``conf/interface/*``, /proc/sys/net/ipv6/*)."""
    return not line.startswith((" ", "\t")) and bool(SECTION_PATH.search(line)) and not ENTRY.match(line)


def section_prefix(line, top):
    """(dotted prefix, absolute?) a section line sets, or None."""
    m = SECTION_PATH.search(line)
    if not m:
        m2 = re.search(r"/proc/sys/([\w/]+)", line)
        if not m2:
            return None
        return ".".join(c for c in m2.group(1).split("/") if c), True
    comps = [c for c in m.group(2).split("/") if c]
    comps = ["*" if c in ("interface", "<interface>", "<iface>", "<dev>") or c.startswith("<")
             or (c in ("all", "default") and i > 0 and comps[i - 1] == "conf") else c
             for i, c in enumerate(comps)]
    if m.group(1):
        return ".".join(comps), True
    base = top.split(".")
    if base[:len(comps)] == comps[:len(base)]:
        return ".".join(comps), False
    return ".".join(base[:2] + comps) if base[0] == "net" else ".".join(base + comps), False


def heading_is_key(line):
    """Whether a heading names sysctls (not 'Documentation for /proc/sys/vm/')."""
    text = re.sub(r"\([^)]*\)", "", line).strip()
    return bool(text) and bool(re.match(r"^[\w\-]+(\s*(,\s*and|,|&|and)\s*[\w\-]+)*\s*,?$", text)) \
        and not re.match(r"^\d", text)


def heading_names(line):
    """The key names of a heading: `msgmax, msgmnb, and msgmni`, `domainname & hostname`."""
    text = re.sub(r"\([^)]*\)", "", line).strip()
    return [n for n in re.split(r"\s*(?:,|&|\band\b)\s*", text) if n and re.match(r"^[\w\-]+$", n)]


def join(prefix, name):
    """prefix + name, with `/` in the name meaning a sub-directory."""
    name = name.strip("/").replace("/", ".")
    return "%s.%s" % (prefix, name) if prefix else name


def indented(lines, start):
    """The body of a definition entry: following lines until the next column-0 text."""
    out = []
    for line in lines[start:]:
        if line.strip() and not line.startswith((" ", "\t")):
            break
        out.append(line)
    return out


def block(lines, start, headings):
    """The body under a heading: until the next heading."""
    out = []
    for i in range(start, len(lines)):
        if i in headings:
            break
        out.append(lines[i])
    return out


def stated_default(body):
    """The default a documentation body states, as a string of integers, or None."""
    text = "\n".join(body)
    words = {"true": "1", "false": "0", "enabled": "1", "disabled": "0", "on": "1", "off": "0"}
    m = re.search(r"\b[Dd]efault(?:\s+value)?\s*(?::|is|=|value is)?\s*:?\s*(-?\d+(?:\s+-?\d+)*|0x[0-9a-fA-F]+|TRUE|FALSE|true|false|enabled|disabled)\b", text)
    if m:
        value = m.group(1)
        value = words.get(value.lower(), value)
        if value.startswith("0x"):
            value = str(int(value, 16))
        return re.sub(r"\s+", " ", value)
    m = re.search(r"^\s*[-*]?\s*(-?\d+)\s*-.*\(default\)", text, re.M)
    if m:
        return m.group(1)
    return None
