"""The lab suite's steps.

A step contributes guest files and a shell script to one boot, and afterwards turns what the
script left in the guest's /out/<step>/ into checks. Guest scripts only act and record (raw
values as hex, sysprof's JSON); every judgement is made here, on the host, where it can be read
and tested. Steps that span a reboot keep what they need to compare in the step object.
"""

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LAB = Path(__file__).resolve().parents[1]
REPO = LAB.parents[1]


@dataclass
class Check:
    """One tallied result."""
    name: str
    ok: bool
    detail: str = ""


class Out:
    """The files one step left in the guest's /out/<step>/."""

    def __init__(self, files, step):
        prefix = f"{step}/"
        self.files = {k[len(prefix):]: v for k, v in files.items() if k.startswith(prefix)}

    def has(self, name):
        """Whether the guest wrote this file."""
        return name in self.files

    def text(self, name, default=None):
        """A file as text (``default`` when missing)."""
        data = self.files.get(name)
        return default if data is None else data.decode("utf-8", "replace")

    def rc(self, name):
        """An exit status the guest saved (``None`` when missing)."""
        text = self.text(name)
        return int(text.strip()) if text and text.strip().lstrip("-").isdigit() else None

    def json(self, name):
        """A file parsed as JSON (``None`` when missing or not JSON)."""
        try:
            return json.loads(self.text(name, ""))
        except ValueError:
            return None

    def raw(self, name):
        """Bytes the guest saved as `od` hex (``lib.sh raw``); ``None`` when missing."""
        text = self.text(name)
        return None if text is None else bytes.fromhex(text.strip())


def value_of(raw):
    """A sysctl file's content as its value: trailing newline dropped, tabs kept."""
    return None if raw is None else raw.decode("utf-8", "replace").rstrip("\n")


def same_value(a, b):
    """Whether two values are equal as the kernel prints them (whitespace-separated fields)."""
    return a is not None and b is not None and a.split() == b.split()


def profile_yaml(name, description, settings):
    """A profile for a test: ``settings`` is a list of (key, value, reason)."""
    lines = ["version: 1", f"name: {name}", f"description: {json.dumps(description)}",
             "sysctls:"]
    for key, value, reason in settings:
        text = str(value)
        literal = text if text.lstrip("-").isdigit() else json.dumps(text)
        lines += [f"  {key}:", f"    value: {literal}",
                  f"    reason: {json.dumps(reason)}"]
    return "\n".join(lines) + "\n"


def save_raw(keys, prefix):
    """Guest shell lines saving each key's raw content as /out/... <prefix>.<key> (hex)."""
    return "\n".join(f"raw {k} >{prefix}.{k}" for k in keys)


@dataclass
class Context:
    """What every step of one kernel's run needs."""
    kernel: object                 # kernels.Kernel
    sysprof: Path                  # the static binary (also run on the host, offline)
    machine: object = None         # vm.Machine of the suite's boots
    schema: dict = field(default_factory=dict)   # `sysprof schema --format json` (shipped)
    notes: list = field(default_factory=list)    # lines for the report

    def host_sysprof(self, *args):
        """Runs sysprof on the host (offline commands only: schema, validate --kernel)."""
        return subprocess.run([str(self.sysprof), "--color", "never", *args],
                              capture_output=True, text=True)

    def lab_schema_files(self):
        """Guest files of a schema dir: the shipped catalogue plus extra-keys.yaml entries it
        lacks (the lab's profiles use kernel.panic, which the catalogue does not have yet)."""
        keys = (REPO / "schema" / "keys.yaml").read_text()
        known = set(re.findall(r"^- key: (\S+)", keys, re.M))
        extra = (LAB / "extra-keys.yaml").read_text()
        added = []
        for entry in re.split(r"\n(?=- key: )", extra):
            match = re.match(r"- key: (\S+)", entry.strip())
            if match and match.group(1) not in known:
                keys += "\n" + entry.strip() + "\n"
                added.append(match.group(1))
        if added:
            self.notes.append(f"--schema: shipped catalogue + {', '.join(added)} "
                              "(scripts/lab/extra-keys.yaml)")
        return {"lab/schema/keys.yaml": keys.encode(),
                "lab/schema/rules.yaml": (REPO / "schema" / "rules.yaml").read_bytes()}
