"""Global keys for real: apply a profile, read the values back, roll back, and compare the raw
file contents before and after byte for byte (nf_conntrack loaded for its table size)."""

from . import Check, profile_yaml, save_raw, value_of

# key, value to apply, why (profiles need reasons). The values are unlikely to be any kernel's
# default, so every key is really written.
KEYS = [
    ("vm.swappiness", 17, "Lab: a global vm key, written for real in a throwaway guest."),
    ("vm.max_map_count", 262143, "Lab: a global vm key other kernels default differently."),
    ("kernel.pid_max", 99999, "Lab: a global kernel key with kernel-enforced bounds."),
    ("fs.file-max", 1234567, "Lab: an unsigned long key (proc_doulongvec_minmax)."),
    ("kernel.panic", 7, "Lab: a key the shipped catalogue lacks, described by --schema."),
    ("net.core.rmem_max", 4194303, "Lab: a net key that exists only in the initial netns."),
    ("net.netfilter.nf_conntrack_max", 54321,
     "Lab: a module's key (nf_conntrack), read-only in child namespaces."),
    ("vm.dirty_bytes", 100000000,
     "Lab: one of an exclusive pair; writing it zeroes vm.dirty_ratio, which rollback restores."),
]

# Keys the profile does not name that the kernel changes as a side effect of KEYS: each must be
# restored byte-identical too.
COUPLED = ["vm.dirty_ratio"]


class Globals:
    """apply -> read back -> rollback with byte-identical restore."""

    name = "globals"
    timeout = 120

    def files(self, ctx):
        """The profile and the schema dir (the catalogue plus extra keys)."""
        text = profile_yaml("lab-globals", "Global keys the kernel lab writes and restores.",
                            KEYS)
        return {"lab/globals.yaml": text.encode(), **ctx.lab_schema_files()}

    def script(self, ctx):
        """Raw values before, apply, raw values, rollback, raw values after."""
        keys = [k for k, _, _ in KEYS] + COUPLED
        sp = "sysprof --state-dir /tmp/globals --no-persist --schema /lab/schema"
        return "\n".join([
            "labmod nf_conntrack",
            save_raw(keys, "/out/globals/before"),
            f"{sp} apply /lab/globals.yaml >/out/globals/apply.out 2>&1",
            "echo $? >/out/globals/apply.rc",
            save_raw(keys, "/out/globals/applied"),
            f"{sp} rollback >/out/globals/rollback.out 2>&1",
            "echo $? >/out/globals/rollback.rc",
            save_raw(keys, "/out/globals/after"),
        ])

    def analyze(self, ctx, out):
        """One check for apply and rollback each, two per key (value applied, restored)."""
        checks = [_rc_check(out, "apply"), _rc_check(out, "rollback")]
        for key, value, _ in KEYS:
            before, applied, after = (out.raw(f"{p}.{key}") for p in ("before", "applied",
                                                                       "after"))
            if before is None:
                checks.append(Check(f"globals {key}", False, "not readable in the guest"))
                continue
            if value_of(before) == str(value):
                checks.append(Check(f"globals {key} applied", False,
                                    f"already {value} before the apply: nothing was tested"))
            else:
                checks.append(Check(f"globals {key} applied", value_of(applied) == str(value),
                                    f"want {value}, kernel has {value_of(applied)!r}"))
            checks.append(Check(f"globals {key} restored byte-identical", after == before,
                                f"before {before!r}, after rollback {after!r}"))
        for key in COUPLED:
            before, after = out.raw(f"before.{key}"), out.raw(f"after.{key}")
            checks.append(Check(f"globals {key} (coupled) restored byte-identical",
                                before is not None and after == before,
                                f"before {before!r}, after rollback {after!r}"))
        return checks


def _rc_check(out, what):
    rc = out.rc(f"{what}.rc")
    detail = f"exit {rc}: " + (out.text(f"{what}.out") or "").strip()[-400:]
    return Check(f"globals {what} exits 0", rc == 0, detail)
