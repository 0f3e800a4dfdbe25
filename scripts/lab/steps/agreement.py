"""`sysprof validate --kernel X`, offline on the host, against what kernel X really has.

The guest dumps every key of /proc/sys with its mode, as booted and in a fresh child network
namespace (``unshare -n``), with every sysctl module of the kernel loaded. On the host, one
profile naming every catalogue entry (a pattern entry through its ``all`` and ``default``
instances) is validated twice for the same kernel version: plainly, and as for a child namespace
(``--netns`` naming the host's own namespace, so nothing changes but the target). For each key
the findings are the catalogue's claims:

- exists on X: no ``unknown-key``, ``key-absent``, ``key-removed`` or ``key-not-yet-added``
  finding. The catalogue's releases are source releases: a key X's source tables have but this
  build of X lacks (a filesystem or driver Debian's cloud kernel leaves out) agrees, and is
  counted in a note; a key X's source lacks must be absent;
- in a child namespace: writable (no ``not-writable-in-netns`` or ``read-only-key``),
  read-only, absent, or global (not namespaced: the child sees the host's own file).

A key agrees when the dump says the same. One guest boot covers any catalogue size.
"""

import json
import tempfile
from pathlib import Path

from . import Check
from .. import introspect
from ..kernels import LabError

EXISTENCE_RULES = {"unknown-key", "key-absent", "key-removed", "key-not-yet-added"}
EXTRACTED = Path(__file__).resolve().parents[3] / "schema" / "gen" / "extracted"
INSTANCES = ["all", "default"]


def instances(key):
    """Concrete keys for a catalogue entry (``*`` components become all/default)."""
    if "*" not in key.split("."):
        return [key]
    return [".".join(i if c == "*" else c for c in key.split(".")) for i in INSTANCES]


def child_claim(findings):
    """What a child-namespace validation says about a key (a ``read-only-key`` finding: it is
    read-only everywhere, so in a child namespace too)."""
    for f in findings:
        if f["rule"] == "not-writable-in-netns":
            if "read-only" in f["message"]:
                return "read-only"
            if "absent" in f["message"]:
                return "absent"
            return "global"
    if any(f["rule"] == "read-only-key" for f in findings):
        return "read-only"
    return "writable"


def child_truth(dump, key):
    """What the child namespace's dump says about a key (writable: a write bit, or a write of
    its own value that the kernel let through to the handler)."""
    entry = dump["child_netns"].get(key)
    if entry is None:
        return "absent"
    if introspect.writable(entry) or key in dump.get("child_writable", set()):
        return "writable"
    return "read-only"


# Guest shell: in a fresh child namespace, every readable one-line key without a write bit gets
# its own value written back; the open fails with "Permission denied" unless a permissions hook
# grants the write. Only the error text is kept: a write the handler refuses (EINVAL) was let
# through all the same. Nothing changes: the value written is the one read.
WRITE_TEST = r"""
unshare -n sh -c '
tab=$(printf "\t")
while IFS=$tab read -r mode path status value; do
    case $mode in *[2367]*) continue ;; esac
    [ "$status" = ok ] || continue
    case $value in *\\*|"") continue ;; esac
    if { echo "$value" >"$path"; } 2>/tmp/.write.err; then result=ok; else
        IFS= read -r result </tmp/.write.err; result=${result##*: }; fi
    printf "%s\t%s\n" "$path" "$result"
done </out/agreement/child.tsv >/out/agreement/child-write.tsv'
"""


def writable_by_hook(text):
    """Keys whose write-back in the child got past the permission check (``child-write.tsv``)."""
    out = set()
    for line in text.splitlines():
        path, _, result = line.partition("\t")
        if path and result not in ("Permission denied", "Operation not permitted"):
            out.add(introspect.key_of(path))
    return out


class Agreement:
    """Dump in the guest; compare with offline validation on the host."""

    name = "agreement"
    timeout = 180

    def __init__(self):
        self.dump = None
        self.source = set()
        self.unbuilt = 0

    def files(self, ctx):
        """Nothing beyond the image."""
        return {}

    def script(self, ctx):
        """The two dumps, and which keys without a write bit a child namespace can write all the
        same (a table's permissions hook: ipc_permissions lets a checkpoint/restore-capable
        process write kernel.*_next_id, mode 0444)."""
        return introspect.dump_script("/out/agreement") + WRITE_TEST

    def analyze(self, ctx, out):
        """One check per concrete key."""
        try:
            self.dump = introspect.document(ctx.kernel, ctx.machine, out.files)
        except LabError as err:
            return [Check("validate agreement: dump", False, str(err))]
        self.dump["child_writable"] = writable_by_hook(out.text("child-write.tsv", ""))
        self.source = source_keys(ctx.kernel.release)
        pairs = [(e["key"], k) for e in ctx.schema["keys"] for k in instances(e["key"])]
        keys = [k for _, k in pairs]
        plain = findings_by_key(ctx, keys, child=False)
        child = findings_by_key(ctx, keys, child=True)
        if plain is None or child is None:
            return [Check("validate agreement: sysprof validate", False,
                          "sysprof validate printed no JSON")]
        checks = [self._judge(entry, key, plain.get(key, []), child.get(key, []))
                  for entry, key in pairs]
        if self.unbuilt:
            ctx.notes.append(f"{self.unbuilt} catalogued key(s) of the {self.dump['release']} "
                             "source are not built into this kernel (config or missing module)")
        return checks

    def _judge(self, entry, key, plain, child):
        claims_exists = not any(f["rule"] in EXISTENCE_RULES for f in plain)
        exists = key in self.dump["init"]
        name = f"validate {key}"
        if claims_exists and not exists and in_source(entry, self.source):
            self.unbuilt += 1
            return Check(name, True)
        if claims_exists != exists:
            said = "exists" if claims_exists else "does not exist"
            return Check(name, False, f"validate says it {said} on "
                         f"{self.dump['release']}; the kernel {'has' if exists else 'lacks'} it")
        if not exists:
            return Check(name, True)
        claim, truth = child_claim(child), child_truth(self.dump, key)
        ok = claim == truth or (claim == "global" and truth != "absent")
        return Check(name, ok, f"in a child netns validate says {claim}, the kernel: {truth}")


def source_keys(release):
    """The keys (and ``*`` patterns) the source tables of ``release`` register, from the
    generator's extraction (empty for a release it did not extract)."""
    major_minor = ".".join(release.split("-")[0].split(".")[:2])
    path = EXTRACTED / f"{major_minor}.json"
    if not path.exists():
        return set()
    return set(json.loads(path.read_text())["keys"])


def in_source(key, source):
    """Whether a release's source registers a catalogue key: the key itself, or a directory
    above it that the kernel fills at run time (5.10's ``kernel.sched_domain``)."""
    parts = key.split(".")
    return any(".".join(parts[:n]) in source for n in range(1, len(parts) + 1))


def findings_by_key(ctx, keys, child):
    """Runs ``sysprof validate --kernel X --format json`` on one profile of all keys."""
    with tempfile.TemporaryDirectory(prefix="kernel-lab-validate-") as tmp:
        profile = Path(tmp) / "every-key.yaml"
        lines = ["version: 1", "name: every-catalogue-key", "sysctls:"]
        lines += [f"  {k}: 0" for k in keys]
        profile.write_text("\n".join(lines) + "\n")
        args = ["--netns", "/proc/self/ns/net"] if child else []
        proc = ctx.host_sysprof(*args, "validate", "--kernel", ctx.kernel.release,
                                "--format", "json", str(profile))
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return None
    out = {}
    for report in doc.get("profiles", []):
        for finding in report["findings"]:
            out.setdefault(finding.get("key"), []).append(finding)
    return out
