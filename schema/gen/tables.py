"""Reads every `struct ctl_table` of a kernel source tree and where it is registered.

The result is one record per sysctl file the tree can create: its path (a `*` component where
the kernel fills in a name at run time, such as an interface), the table's fields (mode,
handler, data, maxlen, extra1/extra2), what the handler parses, the bounds the kernel enforces,
and how the table is registered (per network namespace, per IPC/UTS/user/PID namespace, global).
"""

import os
import re

import cparse

# Architectures other than x86 are not covered: their sysctls do not exist on the machines
# sysprof targets, and their headers would shadow x86's definitions.
SKIP_DIRS = ("arch/alpha", "arch/arc", "arch/arm", "arch/arm64", "arch/csky", "arch/hexagon",
             "arch/loongarch", "arch/m68k", "arch/microblaze", "arch/mips", "arch/nios2",
             "arch/openrisc", "arch/parisc", "arch/powerpc", "arch/riscv", "arch/s390",
             "arch/sh", "arch/sparc", "arch/um", "arch/xtensa", "arch/ia64", "arch/c6x",
             "arch/h8300", "arch/nds32", "arch/unicore32", "arch/score", "arch/blackfin",
             "arch/cris", "arch/frv", "arch/m32r", "arch/mn10300", "arch/tile", "arch/metag",
             "arch/avr32", "tools", "samples", "Documentation", "scripts", "lib/test_sysctl.c",
             "kernel/sysctl-test.c", "lib/tests", "drivers/staging", "drivers/perf")

HEADER_DIRS = ("include", "arch/x86/include")

REGISTER = re.compile(
    r"(?<![\w.>])(register_net_sysctl_sz|register_net_sysctl|register_sysctl_init|"
    r"register_sysctl_sz|register_sysctl_table|register_sysctl_paths|__register_sysctl_paths|"
    r"__register_sysctl_table|register_sysctl|__register_sysctl_init)\s*\(")

# Handlers of kernel/sysctl.c and kernel/time/jiffies.c: what each parses.
# elem: the element type; minmax: extra1/extra2 are enforced; hz: the unit is converted to
# jiffies; shape: a non-numeric shape.
STANDARD = {
    "proc_dointvec": {"elem": "int"},
    "proc_dointvec_minmax": {"elem": "int", "minmax": True},
    "proc_douintvec": {"elem": "uint"},
    "proc_douintvec_minmax": {"elem": "uint", "minmax": True},
    "proc_dou8vec_minmax": {"elem": "u8", "minmax": True},
    "proc_doulongvec_minmax": {"elem": "ulong", "minmax": True},
    "proc_dobool": {"elem": "bool"},
    "proc_dointvec_jiffies": {"elem": "int", "hz": "jiffies"},
    "proc_dointvec_userhz_jiffies": {"elem": "int", "hz": "userhz_jiffies"},
    "proc_dointvec_ms_jiffies": {"elem": "int", "hz": "ms_jiffies"},
    "proc_dointvec_ms_jiffies_minmax": {"elem": "int", "hz": "ms_jiffies", "minmax": True},
    "proc_doulongvec_ms_jiffies_minmax": {"elem": "ulong", "hz": "ms_jiffies", "minmax": True},
    "proc_dostring": {"shape": "string"},
    "proc_dostring_coredump": {"shape": "string"},
    "proc_do_uts_string": {"shape": "string"},
    "proc_do_uuid": {"shape": "string"},
    "proc_do_large_bitmap": {"shape": "port_list"},
    "proc_do_static_key": {"elem": "bool", "minmax": True, "extra1": 0, "extra2": 1},
    "proc_dointvec_minmax_sysadmin": {"elem": "int", "minmax": True},
    "proc_dointvec_minmax_coredump": {"elem": "int", "minmax": True},
    "proc_dopipe_max_size": {"elem": "uint"},
    "proc_do_cad_pid": {"elem": "int"},
    "proc_taint": {"elem": "ulong"},
    "sysrq_sysctl_handler": {"elem": "int"},
    "proc_dointvec_conv": {"elem": "int"},
    "vmstat_refresh": {"elem": "int"},
    "ipv4_sysctl_rtcache_flush": {"elem": "int"},
    "ipv6_sysctl_rtcache_flush": {"elem": "int"},
    "proc_dodebug": {"elem": "uint"},
    "svcrdma_counter_handler": {"elem": "int"},
    "rds_tcp_sndbuf_handler": {"elem": "int"},
    "rds_tcp_rcvbuf_handler": {"elem": "int"},
}

# The kernel's generic parsers: for these the element type's range is enforced as such (a
# number beyond it is refused). Every other handler in STANDARD, and every wrapper around one of
# these, checks (or ignores) values in its own code.
GENERIC = {"proc_dointvec", "proc_dointvec_minmax", "proc_douintvec", "proc_douintvec_minmax",
           "proc_dou8vec_minmax", "proc_doulongvec_minmax", "proc_dobool",
           "proc_dointvec_jiffies", "proc_dointvec_userhz_jiffies", "proc_dointvec_ms_jiffies",
           "proc_dointvec_ms_jiffies_minmax", "proc_doulongvec_ms_jiffies_minmax",
           "proc_do_static_key", "proc_dointvec_minmax_sysadmin",
           "proc_dointvec_minmax_coredump"}

# Handlers whose value is not a list of integers, by what they read and write.
SPECIAL_SHAPES = {
    "ipv4_local_port_range": "port_range",
    "ipv4_privileged_ports": "int",
    "ipv4_ping_group_range": "tuple",
    "proc_tcp_congestion_control": "string",
    "proc_allowed_congestion_control": "word_list",
    "proc_tcp_available_congestion_control": "word_list",
    "proc_tcp_available_ulp": "word_list",
    "proc_tcp_fastopen_key": "string",
    "proc_tcp_ehash_entries": "int",
    "proc_udp_hash_entries": "int",
    "proc_do_rss_key": "string",
    "proc_do_dev_weight": "int",
    "set_default_qdisc": "string",
    "proc_do_uts_string": "string",
    "nf_log_proc_dostring": "string",
    "addrconf_sysctl_stable_secret": "string",
    "proc_rt6_multipath_hash_fields": "int",
    "proc_scheduler": "string",
    "proc_sctp_do_hmac_alg": "string",
    "proc_sctp_do_auth": "int",
    "proc_do_dev_weight_rx": "int",
    "proc_pid_ns_last_pid": "int",
    "proc_dointvec_minmax_warn_RT_change": "int",
    "proc_cap_handler": "tuple",
    "rps_default_mask_sysctl": "string",
    "flow_limit_cpu_sysctl": "string",
    "proc_do_rps_default_mask": "string",
    "proc_dohung_task_timeout_secs": "int",
    "proc_watchdog_cpumask": "string",
    "proc_do_key_tstamp": "int",
    "mptcp_set_scheduler": "string",
    "proc_scheduler_avail": "word_list",
    "proc_path_manager": "string",
    "proc_pm_type": "int",
    "proc_available_path_managers": "word_list",
    "proc_available_schedulers": "word_list",
    "proc_blackhole_detect_timeout": "int",
    "proc_do_sync_mode": "int",
    "proc_do_sync_ports": "int",
    "proc_do_sync_threshold": "tuple",
    "proc_do_defense_mode": "int",
    "proc_do_isolated_cpus": "string",
    "sysctl_sys_info_handler": "word_list",
    "seccomp_actions_logged_handler": "word_list",
    "ipvs_proc_est_cpulist": "string",
    "proc_do_xprt": "word_list",
    "vsock_net_mode_string": "string",
    "vsock_net_child_mode_string": "string",
}

# Files whose tables live in a namespace other than the network one.
FILE_SCOPES = {
    "ipc/ipc_sysctl.c": "ipc",
    "ipc/mq_sysctl.c": "ipc",
    "kernel/ucount.c": "user",
    "kernel/utsname_sysctl.c": "uts",
    "kernel/pid_namespace.c": "pid",
    "kernel/pid.c": "pid",
}

# Run-time path formats the kernel fills in with a protocol name, expanded here.
PATH_EXPANSIONS = {
    "net/%s/neigh/%s": ["net/ipv4/neigh/*", "net/ipv6/neigh/*"],
    "net/%s/neigh/%s": ["net/ipv4/neigh/*", "net/ipv6/neigh/*"],
}


class Tree:
    """A kernel source tree: lazily built indexes over its headers and sources."""

    def __init__(self, root):
        """`root` is the unpacked linux-source directory."""
        self.root = root
        self._headers = None
        self._sources = None
        self._header_defs = None
        self._globals = {}
        self._decls = {}
        self._corpus = None
        self._raw_globals = None
        self._siblings = {}
        self.files = {}

    def rel(self, path):
        """A path relative to the tree."""
        return os.path.relpath(path, self.root)

    def walk(self, exts, dirs=None):
        """Relative paths of the files with one of `exts`, skipping other architectures."""
        out = []
        for top in dirs or [""]:
            base = os.path.join(self.root, top)
            for cur, subdirs, files in os.walk(base):
                rel = self.rel(cur)
                subdirs[:] = sorted(d for d in subdirs
                                    if not (os.path.join(rel, d) if rel != "." else d).startswith(SKIP_DIRS))
                for name in sorted(files):
                    path = os.path.normpath(os.path.join(rel, name))
                    if name.endswith(exts) and not path.startswith(SKIP_DIRS):
                        out.append(path)
        return out

    def read(self, rel):
        """A file's text, cleaned of comments and line continuations (cached)."""
        if rel not in self.files:
            with open(os.path.join(self.root, rel), encoding="utf-8", errors="replace") as f:
                self.files[rel] = cparse.clean(f.read())
        return self.files[rel]

    def sources(self):
        """Every C source that mentions a sysctl table."""
        if self._sources is None:
            self._sources = []
            for rel in self.walk((".c", ".h")):
                if rel.endswith(".h") and rel.startswith(HEADER_DIRS):
                    continue
                with open(os.path.join(self.root, rel), encoding="utf-8", errors="replace") as f:
                    raw = f.read()
                if "ctl_table" in raw or "register_sysctl" in raw or "register_net_sysctl" in raw:
                    self._sources.append(rel)
        return self._sources

    def scan(self):
        """One pass over the sysctl sources and the headers: object-like #defines (headers
        only), initialisers and enum values, declarations (type and array length)."""
        if self._header_defs is not None:
            return
        self._header_defs, self._globals, self._decls = {}, {}, {}
        for rel in self.corpus():
            text = self.read(rel)
            if rel.endswith(".h"):
                ambiguous = cparse.ambiguous_macros(text)
                for name, (params, body) in cparse.macros(text).items():
                    if params is None:  # a conditional definition cannot be evaluated here
                        self._header_defs.setdefault(name, None if name in ambiguous else body)
            for m in GLOBAL_INIT.finditer(text):
                self._globals.setdefault(m.group(1), m.group(2).strip())
            for body in ENUM_BODY.finditer(text):
                enum_values(body.group(1), self._globals)
            for m in DECLARATION.finditer(text):
                ctype = re.sub(r"\s+", " ", m.group(1).replace("const", "")).strip()
                self._decls.setdefault(m.group(2), (ctype, m.group(4)))
            self._forget(rel)

    def header_defs(self):
        """Object-like #defines of the headers (first definition wins)."""
        self.scan()
        return self._header_defs

    def global_value(self, name):
        """The initialiser or enum value of a global identifier anywhere in the tree."""
        self.scan()
        if name in self._globals:
            return self._globals[name]
        return self.raw_globals().get(name)

    def declaration(self, name):
        """(type, array length expression or None) of a variable or struct member `name`."""
        self.scan()
        return self._decls.get(name)

    def corpus(self):
        """The files searched for declarations and initialisers: sysctl sources, headers."""
        if self._corpus is None:
            sources = set(self.sources())
            self._corpus = self.sources() + [
                rel for rel in self.walk((".h",), ("include", "net", "arch/x86/include"))
                if rel not in sources]
        return self._corpus

    def sibling_headers(self, rel):
        """The macros of the headers beside a source file (ipc/util.h for ipc/*.c)."""
        folder = os.path.dirname(rel)
        if folder not in self._siblings:
            self._siblings[folder] = []
            base = os.path.join(self.root, folder)
            for name in sorted(os.listdir(base)):
                if name.endswith(".h"):
                    self._siblings[folder].append(cparse.macros(self.read(os.path.join(folder, name))))
        return self._siblings[folder]

    def member_triple(self, rel, variable, member):
        """`{min, default, max}` of `variable.member` initialised in a file beside `rel`
        (xfs_params: `.error_level = { 0, 3, 11 }`), or None."""
        folder = os.path.join(self.root, os.path.dirname(rel))
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".c"):
                continue
            text = self.read(os.path.join(os.path.dirname(rel), name))
            start = re.search(r"\b" + variable + r"\s*=\s*\{", text)
            if not start:
                continue
            body = text[start.end() - 1:cparse.matching(text, start.end() - 1)]
            m = re.search(r"\.\s*" + member + r"\s*=\s*\{([^}]*)\}", body)
            if m:
                items = cparse.split_top(m.group(1))
                if len(items) == 3:
                    return items
        return None

    def _forget(self, rel):
        if not rel.endswith(".c"):
            self.files.pop(rel, None)

    def raw_globals(self):
        """Initialisers of file-level variables in every C file (uncleaned: a fallback)."""
        if self._raw_globals is None:
            self._raw_globals = {}
            for rel in self.walk((".c",)):
                with open(os.path.join(self.root, rel), "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                for m in GLOBAL_INIT.finditer(text):
                    self._raw_globals.setdefault(m.group(1), m.group(2).strip())
        return self._raw_globals


def enum_values(body, out):
    """Adds the constants of one enum body to `out` (explicit values as written)."""
    value = -1
    for item in cparse.split_top(body):
        em = re.match(r"^(\w+)\s*(?:=\s*(.+))?$", item.strip(), re.S)
        if not em:
            return
        if em.group(2) is not None:
            out.setdefault(em.group(1), em.group(2).strip())
            try:
                value = int(cparse.strip_casts(em.group(2)).strip(), 0)
            except ValueError:
                value = None
        elif value is not None:
            value += 1
            out.setdefault(em.group(1), str(value))


GLOBAL_INIT = re.compile(
    r"^(?:static\s+|const\s+|unsigned\s+|signed\s+|volatile\s+)*(?:int|long|unsigned|u8|u16|u32|u64|s32|bool|size_t|ulong|uint|char)\b[\w\s\*]*?\b(\w+)\s*(?:__\w+(?:\([^)]*\))?\s*)*=\s*([^;{]+);",
    re.M)
ENUM_BODY = re.compile(r"\benum\s*\w*\s*\{([^{}]*)\}")
DECLARATION = re.compile(
    r"\b((?:unsigned\s+|signed\s+|const\s+)*(?:long\s+long|long|int|short|char|u8|u16|u32|u64|s8|s16|s32|s64|bool|atomic_t|atomic_long_t|unsigned|kuid_t|kgid_t|size_t|__u32|__u64|ulong|uint))\s+(?:__\w+\s+)*(\w+)\s*(\[\s*([^\]]*)\])?\s*(?:__\w+(?:\([^)]*\))?\s*)*[;=,)]")


class SourceFile:
    """One C file's tables, paths, macros, functions and registrations."""

    def __init__(self, tree, rel):
        """Parses `rel` of `tree`."""
        self.tree, self.rel = tree, rel
        self.text = tree.read(rel)
        self.defs = cparse.macros(self.text)
        self.functions = cparse.functions(self.text)
        self.tables = {}
        self.runtime_tables = set()
        self.paths = {}
        self.registrations = []
        self._tables()
        self._paths()
        self._registrations()

    def _tables(self):
        decl = re.compile(r"struct\s+ctl_table\s+(\w+)\s*\[[^\]]*\]\s*(?:__\w+\s*)*(=\s*\{|;)")
        for m in decl.finditer(self.text):
            if m.group(2) == ";":
                self.runtime_tables.add(m.group(1))
                continue
            start = m.end() - 1
            self.tables.setdefault(m.group(1), self._entries(start))
        # Tables that are a member of a struct (devinet_vars, neigh_vars): `.member = { ... }`.
        members = set(re.findall(r"struct\s+ctl_table\s+(\w+)\s*\[[^\]]*\]\s*;", self.text))
        for member in members:
            for m in re.finditer(r"\.\s*" + member + r"\s*=\s*\{", self.text):
                self.tables.setdefault(member, self._entries(m.end() - 1))
                self.runtime_tables.discard(member)

    def _entries(self, brace):
        body = self.text[brace + 1:cparse.matching(self.text, brace) - 1]
        body = cparse.expand(cparse.drop_directives(body), self.defs)
        entries = []
        for index, item in enumerate(cparse.split_top(body)):
            designator = re.match(r"^\[\s*([^\]]*?)\s*\]\s*=\s*", item.strip())
            item = re.sub(r"^\[[^\]]*\]\s*=\s*", "", item.strip())
            if not item.startswith("{"):
                continue
            fields = {"_index": str(index)}
            if designator:
                fields["_designator"] = designator.group(1)
            for field in cparse.split_top(item[1:cparse.matching(item, 0) - 1]):
                fm = re.match(r"\.\s*(\w+)\s*=\s*(.*)$", field, re.S)
                if fm:
                    fields[fm.group(1)] = re.sub(r"\s+", " ", fm.group(2)).strip()
            if len(fields) > 1 or "_designator" in fields:
                entries.append(fields)
        return entries

    def runtime_extras(self, table):
        """{(index or designator, side): expression} of extra1/extra2 assigned at run time in
        functions that use `table` (`table[0].extra1 = &net->ipv4.fqdir->low_thresh`)."""
        if not hasattr(self, "_runtime"):
            self._runtime = {}
            for body in self.functions.values():
                used = [t for t in self.tables if re.search(r"\b" + t + r"\b", body)]
                for m in re.finditer(r"\b\w+\s*\[\s*(\w+)\s*\]\s*\.\s*(extra1|extra2)\s*=\s*([^;]+);", body):
                    for t in used:
                        self._runtime.setdefault(t, {})[(m.group(1), m.group(2))] = m.group(3).strip()
        return self._runtime.get(table, {})

    def _paths(self):
        for m in re.finditer(r"struct\s+ctl_path\s+(\w+)\s*\[\]\s*=\s*\{", self.text):
            body = self.text[m.end():cparse.matching(self.text, m.end() - 1) - 1]
            self.paths[m.group(1)] = re.findall(r'\.procname\s*=\s*"([^"]*)"', body)

    def _registrations(self):
        for m in REGISTER.finditer(self.text):
            line_start = self.text.rfind("\n", 0, m.start()) + 1
            prefix = self.text[line_start:m.start()]
            if "#" in prefix or re.search(r"\b(int|void|struct ctl_table_header \*)\s*$", prefix) and "=" not in prefix:
                continue
            open_at = m.end() - 1
            close = cparse.matching(self.text, open_at, "(", ")")
            args = cparse.split_top(self.text[open_at + 1:close - 1])
            body = cparse.enclosing_function(self.text, m.start())
            self.registrations.append((m.group(1), args, body))

    def value_of(self, name):
        """What an identifier stands for in this file: a macro or a variable initialiser."""
        if name in self.defs and self.defs[name][0] is None:
            return self.defs[name][1]
        m = re.search(r"\b(?:int|long|unsigned|u8|u16|u32|u64|s32|bool|size_t|ulong)\b[\w\s]*?\b"
                      + re.escape(name) + r"\b\s*(?:__\w+\s*)*=\s*([^;,{]+)[;,]", self.text)
        if m:
            return m.group(1).strip()
        m = re.search(r"\b" + re.escape(name) + r"\s*=\s*([^,;}{]+)[,}]", self.enums())
        if m:
            return m.group(1).strip()
        return None

    def enums(self):
        """The bodies of this file's enums, joined."""
        return " ".join(self.text[m.end() - 1:cparse.matching(self.text, m.end() - 1)]
                        for m in re.finditer(r"\benum\s*\w*\s*\{", self.text))


class Resolver:
    """Evaluates expressions of one file: its own names first, then headers, then the tree."""

    def __init__(self, tree, source):
        self.tree, self.source = tree, source
        self.evaluator = cparse.Evaluator(self.lookup)

    def lookup(self, name):
        """The text `name` stands for, or None."""
        local = self.source.value_of(name)
        if local is not None:
            return local
        for header in self.tree.sibling_headers(self.source.rel):
            params_body = header.get(name)
            if params_body and params_body[0] is None:
                return params_body[1]
        defs = self.tree.header_defs()
        if name in defs:
            return defs[name]
        return self.tree.global_value(name)

    def number(self, expr):
        """(value, None) or (None, why) for an expression."""
        try:
            return self.evaluator.value(expr), None
        except cparse.Unresolved as e:
            return None, e.why
        except (KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError):
            return None, expr

    def pointee(self, expr):
        """(value, why) of what an extra1/extra2 pointer points at."""
        expr = re.sub(r"^\(\s*(?:const\s+)?[\w ]+\*\s*\)\s*", "", expr.strip()).strip()
        m = re.match(r"^SYSCTL_(\w+)$", expr)
        if m:
            return sysctl_constant(m.group(1), self)
        m = re.match(r"^&\s*([A-Za-z_]\w*)$", expr)
        if m:
            arr = re.search(r"\b" + m.group(1) + r"\s*\[[^\]]*\]\s*(?:__\w+\s*)*=\s*\{([^}]*)\}",
                            self.source.text)
            if arr:
                values = [self.number(item) for item in cparse.split_top(arr.group(1))]
                distinct = {v for v, _ in values}
                if len(distinct) == 1 and None not in distinct:
                    return values[0]
                return None, "per-element bounds in " + m.group(1)
            text = self.lookup(m.group(1))
            zeroed = r"\bstatic\s+(?:const\s+)?[\w ]+?\b" + m.group(1) + r"\s*(?:__\w+\s*)*;"
            assigned = re.search(r"\b" + m.group(1) + r"\s*=[^=]", self.source.text)
            if text is None and re.search(zeroed, self.source.text) and not assigned:
                return 0, None
            if text is None:
                return None, "no initialiser for " + m.group(1)
            if text.startswith("{"):
                return None, "array " + m.group(1)
            return self.number(text)
        m = re.match(r"^&\s*([A-Za-z_]\w*)\s*\[\s*(\d+)\s*\]$", expr)
        if m:
            arr = re.search(r"\b" + m.group(1) + r"\s*\[[^\]]*\]\s*=\s*\{([^}]*)\}", self.source.text)
            if arr:
                items = cparse.split_top(arr.group(1))
                if int(m.group(2)) < len(items):
                    return self.number(items[int(m.group(2))])
            return None, expr
        m = re.match(r"^&\s*(\w+)\.(\w+)\.(min|max)$", expr)
        if m:
            found = self.tree.member_triple(self.source.rel, m.group(1), m.group(2))
            if found:
                return self.number(found[0 if m.group(3) == "min" else 2])
        if expr.startswith("&"):
            return None, "dynamic: " + expr[1:].strip()
        return None, expr


def sysctl_constant(name, resolver):
    """The value behind SYSCTL_ZERO, SYSCTL_INT_MAX, SYSCTL_LONG_MAX, ..."""
    known = {"ZERO": 0, "ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "ONE_HUNDRED": 100,
             "TWO_HUNDRED": 200, "ONE_THOUSAND": 1000, "THREE_THOUSAND": 3000,
             "INT_MAX": 2**31 - 1, "MAXOLDUID": 65535, "NEG_ONE": -1, "LONG_ZERO": 0,
             "LONG_ONE": 1, "LONG_MAX": 2**63 - 1, "FIVE": 5, "U8_MAX": 255, "S32_MAX": 2**31 - 1}
    if name in known:
        return known[name], None
    return None, "SYSCTL_" + name


def handler_info(tree, source, name, seen=None):
    """What a handler parses: a STANDARD entry, possibly with the extras a wrapper imposes."""
    seen = seen or set()
    if name in STANDARD:
        info = dict(STANDARD[name])
        info["parse"] = name
        return info
    info = {"custom": True, "parse": None}
    if name in SPECIAL_SHAPES:
        info["shape"] = SPECIAL_SHAPES[name]
    if name in seen:
        return info
    seen.add(name)
    body, where = source.functions.get(name), source
    if body is None:
        where = find_function(tree, name)
        body = where.functions.get(name) if where else None
    if body is None:
        return info
    calls = [c for c in re.findall(r"\b(proc_\w+|\w+_proc\w*|\w+_sysctl\w*)\s*\(", body)
             if c != name]
    for call in calls:
        inner = handler_info(tree, where, call, seen)
        if inner.get("parse") is None and "elem" not in inner and "shape" not in inner:
            continue
        merged = dict(inner)
        merged["custom"] = True
        merged.pop("extra1", None)
        merged.pop("extra2", None)
        if "shape" in info:
            merged["shape"] = info["shape"]
        tmp = re.search(r"\b" + re.escape(call) + r"\s*\(\s*&\s*(\w+)", body)
        if inner.get("table_extras") is False:
            pass
        elif tmp:
            var = tmp.group(1)
            merged["table_extras"] = False
            for side in ("extra1", "extra2"):
                sm = re.search(r"\b" + var + r"\s*\.\s*" + side + r"\s*=\s*([^;]+);", body)
                if not sm:
                    sm = re.search(r"\." + side + r"\s*=\s*([^,}]+)[,}]", body)
                if sm:
                    merged[side + "_expr"] = sm.group(1).strip()
                    merged["file"] = where.rel
                elif re.search(r"\b" + var + r"\s*=\s*\*\s*\w+\s*;", body) or re.search(
                        r"\bmemcpy\s*\(\s*&\s*" + var + r"\s*,\s*\w+\s*,", body):
                    merged["table_extras"] = True
        else:
            merged["table_extras"] = True
        return merged
    return info


_FUNCTION_INDEX = {}


def find_function(tree, name):
    """The SourceFile defining function `name`, searched among sysctl sources and kernel/."""
    key = (id(tree), name)
    if key not in _FUNCTION_INDEX:
        found = None
        for rel in tree.sources():
            if name in tree.read(rel) and re.search(r"\b" + name + r"\s*\([^;{]*\)\s*\{", tree.read(rel)):
                found = parsed(tree, rel)
                if name in found.functions:
                    break
                found = None
        _FUNCTION_INDEX[key] = found
    return _FUNCTION_INDEX[key]


_PARSED = {}


def parsed(tree, rel):
    """The SourceFile of `rel`, parsed once."""
    key = (id(tree), rel)
    if key not in _PARSED:
        _PARSED[key] = SourceFile(tree, rel)
    return _PARSED[key]


def table_index(tree):
    """{table name: [SourceFile, ...]} over every sysctl source of the tree."""
    index = {}
    for rel in tree.sources():
        source = parsed(tree, rel)
        for name in list(source.tables) + sorted(source.runtime_tables):
            index.setdefault(name, []).append(source)
    return index


def resolve_path(source, expr, body):
    """The registration path(s) an argument names, with `*` for run-time components."""
    text = cparse.c_string(expr)
    if text is not None:
        return [text]
    name = expr.strip()
    if re.match(r"^\w+$", name):
        if name in source.defs and source.defs[name][0] is None:
            text = cparse.c_string(source.defs[name][1])
            if text is not None:
                return [text]
        fm = re.search(r"\b(?:snprintf|sprintf|scnprintf)\s*\(\s*" + name + r"\s*,[^\"]*?(\"[^\"]*\")", body)
        if not fm:
            fm = re.search(r"\b" + name + r"\s*=\s*kasprintf\s*\(\s*\w+\s*,\s*(\"[^\"]*\")", body)
        if fm:
            fmt = cparse.c_string(fm.group(1))
            if fmt in PATH_EXPANSIONS:
                return PATH_EXPANSIONS[fmt]
            return [re.sub(r"%[-\d.]*l*[sdui]", "*", fmt)]
    return None


def resolve_table(source, expr, body, index, depth=0):
    """(SourceFile, table name) that a registration argument refers to, or None."""
    expr = re.sub(r"^\(\s*[\w\s\*]+\)\s*", "", expr.strip())
    m = re.match(r"^&?\s*(\w+)\s*(?:\[\s*0\s*\])?$", expr)
    member = re.match(r"^&?\s*\w+(?:->|\.)(\w+)(?:\s*\[\s*0\s*\])?$", expr)
    if member:
        name = member.group(1)
    elif m:
        name = m.group(1)
    else:
        return None
    if name in source.tables or name in source.runtime_tables:
        return source, name
    if depth < 3 and body:
        for pattern in (r"\b" + name + r"\s*=\s*kmemdup(?:_array)?\s*\(\s*&?\s*(\w+(?:(?:->|\.)\w+)?)",
                        r"\b" + name + r"\s*=\s*&?\s*(\w+(?:(?:->|\.)\w+)?)\s*(?:\[\s*0\s*\])?\s*;"):
            for am in re.finditer(pattern, body):
                found = resolve_table(source, am.group(1), body, index, depth + 1)
                if found:
                    return found
        for am in re.finditer(r"\b" + name + r"\s*=\s*(\w+)\s*\(", body):
            callee = source.functions.get(am.group(1))
            if callee is None and am.group(1) not in ("kmemdup", "kmemdup_array", "kzalloc", "kmalloc", "kcalloc"):
                where = find_function(source.tree, am.group(1))
                if where:
                    source, callee = where, where.functions[am.group(1)]
            if callee:
                for cm in re.finditer(r"\bkmemdup(?:_array)?\s*\(\s*&?\s*(\w+)", callee):
                    found = resolve_table(source, cm.group(1), callee, index, depth + 1)
                    if found:
                        return found
    if name in index:
        return index[name][0], name
    return None


def mounts(tree):
    """Every registration: (path components, SourceFile, table, kind, registering file)."""
    index = table_index(tree)
    out, problems = [], []
    for rel in tree.sources():
        if rel in ("fs/proc/proc_sysctl.c", "net/sysctl_net.c"):
            continue
        source = parsed(tree, rel)
        for base in re.finditer(r"\bDECLARE_SYSCTL_BASE\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)", source.text):
            table = resolve_table(source, base.group(2), "", index)
            if table:
                out.append(([base.group(1)], table[0], table[1], "global", rel))
        for fn, args, body in source.registrations:
            mount = registration(source, fn, args, body, index)
            if mount is None:
                problems.append("%s: %s(%s)" % (rel, fn, ", ".join(args)))
                continue
            out.extend(mount)
    return out, problems


def registration(source, fn, args, body, index):
    """The mounts of one register_*sysctl* call, or None when it cannot be resolved."""
    kind = "global"
    if fn.startswith("register_net_sysctl"):
        if len(args) < 3:
            return None
        kind = "net_init" if args[0].replace(" ", "") == "&init_net" else "net"
        path_arg, table_arg = args[1], args[2]
    elif fn == "__register_sysctl_table":
        if len(args) < 3 or "net->sysctls" in args[0]:
            return []
        kind = FILE_SCOPES.get(source.rel, "set")
        path_arg, table_arg = args[1], args[2]
    elif fn == "register_sysctl_table":
        path_arg, table_arg = '""', args[0] if args else ""
    elif fn in ("register_sysctl_paths", "__register_sysctl_paths"):
        args = args[1:] if fn.startswith("__") else args
        if len(args) < 2 or args[0].strip() not in source.paths:
            return None
        path_arg, table_arg = '"%s"' % "/".join(source.paths[args[0].strip()]), args[1]
    else:
        if len(args) < 2:
            return None
        path_arg, table_arg = args[0], args[1]
    if kind == "global" and source.rel in FILE_SCOPES:
        kind = FILE_SCOPES[source.rel]
    paths = resolve_path(source, path_arg, body)
    table = resolve_table(source, table_arg, body, index)
    if paths is None or table is None:
        return None
    if table[1] == "empty" or (table[0].tables.get(table[1]) == [] and table[1] not in table[0].runtime_tables):
        return []
    return [([c for c in p.split("/") if c], table[0], table[1], kind, source.rel) for p in paths]


def runtime_entry(source, name):
    """The one entry a table filled in at run time stands for (`nf_log`: one file per family)."""
    fields = {"procname": '"*"'}
    for m in re.finditer(r"\b" + name + r"\s*\[[^\]]*\]\s*\.\s*(\w+)\s*=\s*([^;]+);", source.text):
        if m.group(1) != "procname":
            fields.setdefault(m.group(1), re.sub(r"\s+", " ", m.group(2)).strip())
    return fields if "proc_handler" in fields else None


def walk_table(source, name, path, index, seen=()):
    """(path components, SourceFile, entry) for every file a table (and its children) creates."""
    if (source.rel, name) in seen or len(path) > 12:
        return
    seen = seen + ((source.rel, name),)
    entries = source.tables.get(name)
    if entries is None and name in source.runtime_tables:
        entry = runtime_entry(source, name)
        entries = [entry] if entry else []
    for entry in entries or []:
        procname = cparse.c_string(entry.get("procname", ""))
        if procname is None and re.match(r"^\w+$", entry.get("procname", "")):
            named = re.search(r"\b" + entry["procname"] + r"\s*\[\s*\]\s*=\s*(\"[^\"]*\")",
                              source.text)
            procname = cparse.c_string(named.group(1)) if named else None
        if procname is None:
            continue
        if "child" in entry:
            child = resolve_table(source, entry["child"], "", index)
            if child:
                yield from walk_table(child[0], child[1], path + [procname], index, seen)
            continue
        yield path + [procname], source, entry


ELEM_SIZE = {"int": 4, "uint": 4, "u8": 1, "ulong": 8, "bool": 1}
ELEM_RANGE = {"int": (-(2**31), 2**31 - 1), "uint": (0, 2**32 - 1), "u8": (0, 255),
              "ulong": (0, 2**64 - 1), "bool": (-(2**31), 2**31 - 1)}


def parser_semantics(tree):
    """How this tree's generic parsers treat what they do not store, where releases differ:
    `ulong_negative_ignored` when __do_proc_doulongvec_minmax skips a negative number (accepts
    the write, keeps the value) instead of refusing it (EINVAL from 6.1); `bool_range` when
    proc_dobool parses through do_proc_dobool_conv, which takes any number the unsigned long
    parser reads (its sign dropped) and stores whether it is non-zero (from 6.3 it parses an
    int: the int range, EINVAL beyond). Its negative side reaches -ULONG_MAX, beyond what the
    catalogue's JSON output can carry: it is left unchecked (no EINVAL claimed)."""
    text = tree.read("kernel/sysctl.c")
    funcs = cparse.functions(text)
    ulong = funcs.get("__do_proc_doulongvec_minmax", "")
    dobool = funcs.get("proc_dobool", "")
    out = {"ulong_negative_ignored": bool(re.search(r"if\s*\(\s*neg\s*\)\s*continue\s*;", ulong))}
    if "do_proc_dobool_conv" in dobool:
        out["bool_range"] = (None, 2**64 - 1)
    return out


def records(tree):
    """{dotted key: record} for every sysctl of the tree, plus the problems met."""
    mount_list, problems = mounts(tree)
    index = table_index(tree)
    semantics = parser_semantics(tree)
    out = {}
    for path, source, table, kind, reg_file in mount_list:
        for comps, where, entry in walk_table(source, table, path, index):
            key = ".".join(c.replace(".", "/") for c in comps)
            record = build(tree, where, table, entry, kind, reg_file, semantics)
            if key in out:
                out[key]["duplicates"] = out[key].get("duplicates", 0) + 1
                continue
            out[key] = record
    dynamic_bounds(out)
    return out, problems


def dynamic_bounds(records):
    """A bound that points at another sysctl's variable moves with that sysctl: it is not a
    constant, whatever the variable's initial value."""
    by_variable = {}
    for key, record in records.items():
        m = re.search(r"(\w+)\s*\)?\s*$", record.get("data") or "")
        if m and record.get("data", "").lstrip("(").startswith("&"):
            by_variable.setdefault(m.group(1), key)
    for key, record in records.items():
        for side, bound in (("extra1", "min"), ("extra2", "max")):
            m = re.search(r"&\s*(?:[\w.>-]*?[.>])?(\w+)\s*$", record.get(side) or "")
            other = by_variable.get(m.group(1)) if m else None
            if other and other != key:
                record[bound] = None
                record[side + "_unresolved"] = "the current value of " + other


def build(tree, source, table, entry, kind, reg_file, semantics=None):
    """The facts of one table entry (`semantics`: the tree's `parser_semantics`)."""
    semantics = semantics or {}
    resolver = Resolver(tree, source)
    handler = re.sub(r"^&\s*", "", entry.get("proc_handler", "")).strip()
    record = {"file": source.rel, "table": table, "registration": kind,
              "handler": handler or None}
    if reg_file != source.rel:
        record["registered_in"] = reg_file
    mode, _ = resolver.number(entry.get("mode", "0"))
    record["mode"] = "%04o" % mode if mode is not None else None
    info = handler_info(tree, source, handler) if handler else {}
    record["parse"] = info.get("parse")
    if info.get("custom"):
        record["custom"] = True
    if info.get("hz"):
        record["hz"] = info["hz"]
    elem = info.get("elem")
    record["shape"] = info.get("shape") or (elem and "number")
    record["elem"] = elem
    runtime = source.runtime_extras(table)
    for side in ("extra1", "extra2"):
        expr = runtime.get((entry.get("_index"), side)) or runtime.get((entry.get("_designator"), side))
        if expr and info.get("minmax") and info.get("table_extras", True):
            entry = dict(entry)
            entry[side] = "&" + expr.lstrip("&") if expr.startswith("&") else expr
            record[side + "_runtime"] = expr
    if elem:
        record["len"] = vector_length(tree, resolver, entry.get("maxlen"), elem)
        bounds(record, info, entry, resolver, semantics)
        if elem == "ulong" and semantics.get("ulong_negative_ignored") and not record.get("hz") \
                and not own_code(info):
            record["negative"] = "ignored"
        for side in ("extra1", "extra2"):
            if info.get("minmax") and info.get("table_extras", True) and entry.get(side):
                record[side] = entry[side]
    if entry.get("data"):
        record["data"] = entry["data"]
        default = static_default(tree, resolver, entry["data"])
        if default is not None:
            record["static_default"] = default
    return record


def own_code(info):
    """Whether a handler checks values in its own code (not one of the GENERIC parsers as such)."""
    return bool(info.get("custom")) or info.get("parse") not in GENERIC


def bounds(record, info, entry, resolver, semantics=None):
    """kernel min/max: the type's range (as this tree's parser reads it), narrowed by
    extra1/extra2 where the handler checks them. A handler of its own (not one of the GENERIC
    parsers, or a wrapper around one) may refuse, clamp or ignore values in code: a side only
    the type's range would give is left unchecked, one from extra1/extra2 is kept."""
    low, high = ELEM_RANGE[record["elem"]]
    if record["elem"] == "bool" and (semantics or {}).get("bool_range"):
        low, high = semantics["bool_range"]
    if record.get("hz"):
        low = high = None
    extras, values = {}, {}
    if info.get("minmax"):
        if "extra1" in info or "extra2" in info:
            extras = {"extra1": str(info.get("extra1", "")), "extra2": str(info.get("extra2", ""))}
            extras = {k: v for k, v in extras.items() if v}
            values = {k: (int(v), None) for k, v in extras.items()}
        elif info.get("table_extras", True):
            extras = {k: entry[k] for k in ("extra1", "extra2") if k in entry}
            values = {k: resolver.pointee(v) for k, v in extras.items()}
        else:
            extras = {k[:-5]: info[k] for k in ("extra1_expr", "extra2_expr") if k in info}
            values = {k: resolver.pointee(v) for k, v in extras.items()}
        for side, (value, why) in values.items():
            if value is None:
                record[side + "_unresolved"] = why
                if side == "extra1":
                    low = None
                else:
                    high = None
            elif side == "extra1":
                low = value if low is None or record.get("hz") else max(low, value)
                if record.get("hz"):
                    record["extra1_jiffies"] = value
                    low = None
            else:
                high = value if high is None or record.get("hz") else min(high, value)
                if record.get("hz"):
                    record["extra2_jiffies"] = value
                    high = None
    if record["elem"] == "u8" and not record.get("hz"):
        low = 0 if low is None or low < 0 else low
        high = 255 if high is None or high > 255 else high
    if own_code(info):
        from_extras = {side for side, (value, _) in values.items() if value is not None}
        low = low if "extra1" in from_extras else None
        high = high if "extra2" in from_extras else None
    record["min"], record["max"] = low, high


def maxlen_bytes(tree, resolver, expr):
    """(bytes, why) of a maxlen expression, following sizeof(variable) to its declaration."""
    if not expr:
        return None, "no maxlen"

    def sizeof(m):
        inner = m.group(1).strip()
        if re.sub(r"\s+", " ", inner) in cparse.SIZEOF:
            return m.group(0)
        name = re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*$", inner)
        if not name:
            raise cparse.Unresolved("sizeof " + inner)
        indexed = re.search(r"\[[^\]]*\]\s*$", inner)
        decl = tree.declaration(name[0])
        if decl is None:
            raise cparse.Unresolved("declaration of " + name[0])
        ctype, length = decl
        size = cparse.SIZEOF.get(ctype)
        if size is None:
            raise cparse.Unresolved("type " + ctype)
        if length and not indexed:
            n, why = resolver.number(length)
            if n is None:
                raise cparse.Unresolved(why)
            size *= n
        return str(size)

    try:
        text = re.sub(r"\bsizeof\s*\(((?:[^()]|\([^()]*\))*)\)", sizeof, expr)
    except cparse.Unresolved as e:
        return None, e.why
    return resolver.number(text)


def vector_length(tree, resolver, expr, elem):
    """How many values the entry holds (maxlen / element size), or None."""
    size, _ = maxlen_bytes(tree, resolver, expr)
    if not size:
        return None
    if elem == "bool":
        return 1
    return max(1, size // ELEM_SIZE[elem])


def static_default(tree, resolver, data):
    """The compiled-in value of a plain global variable a table points at, or None."""
    m = re.match(r"^\(?\s*&\s*(\w+)\s*\)?$", data.strip())
    if not m:
        return None
    text = resolver.lookup(m.group(1))
    if text is None or text.startswith("{"):
        return None
    value, _ = resolver.number(text)
    return value
