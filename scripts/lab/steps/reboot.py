"""Reboots: what boot reproduces, boot-override warnings, and confirm-or-revert across a reboot.

The persistent disk holds /etc/sysctl.d and /var/lib/sysprof (sysprof's defaults), so a second
boot with the same disk is a reboot: the init runs ``sysctl --system`` as systemd-sysctl or
procps would, with the suite's modules already loaded (as systemd-modules-load runs first).

- ``BootSetup`` (boot 1): two local files, one sorting before ``99-sysprof.conf`` and one after
  it, then ``apply`` with persistence; the warnings must name exactly the later file's line.
- ``BootAfter`` (boot 2): the kernel holds the profile except where the later file won, and
  ``status`` reports exactly that key as drift.
- ``ConfirmApply`` (boot 2): another writer changes one key at run time (never persisted), then
  ``apply --confirm-within 10m`` leaves a change pending.
- ``ConfirmAfterReboot`` (boot 3): the reboot dropped the unconfirmed values; the next sysprof
  command (``confirm``) must refuse, say it was the reboot, record the rollback, and must not
  write the pre-reboot values into the fresh kernel; nothing was persisted; no drift remains.
"""

from . import Check, profile_yaml, same_value, save_raw, value_of

BOOT_KEYS = [
    ("vm.swappiness", 31, "Lab: overridden at boot by 99-zz-local.conf, which sorts later."),
    ("vm.max_map_count", 131071, "Lab: 10-early.conf sets it too but sorts earlier."),
    ("kernel.pid_max", 77777, "Lab: a global key boot must reproduce."),
    ("net.core.somaxconn", 2048, "Lab: a per-netns key boot must reproduce (initial netns)."),
    ("net.netfilter.nf_conntrack_max", 43210,
     "Lab: a module's key; the boot pass runs after the modules are loaded."),
]
EARLY = ("10-early.conf", "vm.max_map_count", "99999")
LATE = ("99-zz-local.conf", "vm.swappiness", "41")
# Keys with fixed boot defaults (fs.file-max, for one, is computed from free memory at boot and
# differs by a few between boots).
CONFIRM_KEYS = [
    ("vm.dirty_background_ratio", 7, "Lab: applied unconfirmed, then the guest reboots."),
    ("net.core.wmem_max", 3145727, "Lab: applied unconfirmed, then the guest reboots."),
    ("vm.dirty_ratio", 33, "Lab: another writer set it at run time before this apply."),
]
RUNTIME_WRITE = ("vm.dirty_ratio", "25")


def _keys(table):
    return [k for k, _, _ in table]


def _rc(out, name, what):
    rc = out.rc(f"{name}.rc")
    tail = (out.text(f"{name}.out") or out.text(f"{name}.err") or "").strip()[-300:]
    return Check(what, rc == 0, f"exit {rc}: {tail}")


class BootSetup:
    """Boot 1: local sysctl.d files, then a persisted apply."""

    name = "boot-setup"
    timeout = 60

    def files(self, ctx):
        """The persisted profile."""
        text = profile_yaml("lab-boot", "Persisted keys the next boot must reproduce.",
                            BOOT_KEYS)
        return {"lab/boot.yaml": text.encode()}

    def script(self, ctx):
        """Writes the local files, diffs and applies (state and sysctl.d on the disk)."""
        lines = ["O=/out/boot-setup", "labmod nf_conntrack"]
        for (name, key, value), where in ((EARLY, "before"), (LATE, "after")):
            lines.append(f"printf '# lab: sorts {where} 99-sysprof.conf\\n{key} = {value}\\n'"
                         f" >/etc/sysctl.d/{name}")
        lines += [
            "sysprof --color never diff /lab/boot.yaml >$O/diff.out 2>&1; echo $? >$O/diff.rc",
            "sysprof apply /lab/boot.yaml --format json >$O/apply.json 2>$O/apply.out",
            "echo $? >$O/apply.rc",
            save_raw(_keys(BOOT_KEYS), "$O/applied"),
            "cp /etc/sysctl.d/99-sysprof.conf $O/persisted.conf",
        ]
        return "\n".join(lines)

    def analyze(self, ctx, out):
        """Apply worked, the values are in, the warnings name exactly the later file's line."""
        checks = [_rc(out, "apply", "boot: persisted apply exits 0")]
        for key, value, _ in BOOT_KEYS:
            got = value_of(out.raw(f"applied.{key}"))
            checks.append(Check(f"boot: {key} applied", same_value(got, str(value)),
                                f"want {value}, kernel has {got!r}"))
        overrides = (out.json("apply.json") or {}).get("boot_overrides")
        if overrides is None:
            checks.append(Check("boot: apply --format json lists boot_overrides", False,
                                (out.text("apply.out") or "")[-300:]))
            return checks
        keys = sorted(str(o.get("key")) for o in overrides)
        checks.append(Check("boot-override: warned for exactly the key a later file sets",
                            keys == [LATE[1]], f"boot_overrides for {keys}, want [{LATE[1]}]"))
        at = " ".join(str(o.get("at")) for o in overrides)
        checks.append(Check("boot-override: names the later file and line",
                            LATE[0] in at and "2" in at, f"at: {at}"))
        diff = out.text("diff.out") or ""
        checks.append(Check("boot-override: diff warns in words",
                            "warning[boot-override]" in diff and LATE[0] in diff
                            and EARLY[0] not in diff, diff[-400:]))
        return checks


class BootAfter:
    """Boot 2: the boot pass reproduced the profile; status reports the one override."""

    name = "boot-after"
    timeout = 60

    def files(self, ctx):
        """Nothing beyond the image."""
        return {}

    def script(self, ctx):
        """Records the boot pass, the values and status."""
        return "\n".join([
            "O=/out/boot-after",
            "cp /run/lab/boot-sysctl.log /run/lab/boot-sysctl.rc $O/",
            save_raw(_keys(BOOT_KEYS), "$O/value"),
            "sysprof status --format json >$O/status.json 2>$O/status.out; echo $? >$O/status.rc",
        ])

    def analyze(self, ctx, out):
        """The kernel equals the profile except the key the later file won; drift says so."""
        rc = out.rc("boot-sysctl.rc")
        checks = [Check("boot: sysctl --system exits 0", rc == 0,
                        f"exit {rc}: {(out.text('boot-sysctl.log') or '')[-300:]}")]
        for key, value, _ in BOOT_KEYS:
            want = LATE[2] if key == LATE[1] else str(value)
            got = value_of(out.raw(f"value.{key}"))
            what = "the later file won, as warned" if key == LATE[1] else "reproduced by boot"
            checks.append(Check(f"boot: {key} {what}", same_value(got, want),
                                f"want {want}, kernel has {got!r}"))
        status = out.json("status.json")
        if status is None:
            return checks + [Check("boot: status --format json", False,
                                   (out.text("status.out") or "")[-300:])]
        drift = {d["key"]: d for d in status.get("drift", [])}
        checks.append(Check("boot: status reports drift only for the overridden key",
                            sorted(drift) == [LATE[1]], f"drift: {sorted(drift)}"))
        entry = drift.get(LATE[1], {})
        checks.append(Check("boot: drift shows the value set and the value now",
                            same_value(entry.get("expected"), "31")
                            and same_value(entry.get("now"), LATE[2]), f"{entry}"))
        checks.append(Check("boot: nothing unfinished or pending after the reboot",
                            not status.get("unfinished") and not status.get("pending"),
                            f"unfinished {status.get('unfinished')}, "
                            f"pending {status.get('pending')}"))
        return checks


class ConfirmApply:
    """Boot 2: a run-time write by someone else, then an unconfirmed apply."""

    name = "confirm-apply"
    timeout = 60

    def __init__(self):
        self.old = {}
        self.new = {}
        self.persisted = None

    def files(self, ctx):
        """The unconfirmed profile."""
        text = profile_yaml("lab-confirm", "Applied with --confirm-within, never confirmed.",
                            CONFIRM_KEYS)
        return {"lab/confirm.yaml": text.encode()}

    def script(self, ctx):
        """The run-time write, the pending apply, and what status shows."""
        key, value = RUNTIME_WRITE
        return "\n".join([
            "O=/out/confirm-apply",
            f"echo {value} >$(key_path {key})",
            save_raw(_keys(CONFIRM_KEYS), "$O/old"),
            "sysprof --color never apply /lab/confirm.yaml --confirm-within 10m"
            " >$O/apply.out 2>&1; echo $? >$O/apply.rc",
            save_raw(_keys(CONFIRM_KEYS), "$O/new"),
            "sysprof status --format json >$O/status.json 2>&1",
            "cp /etc/sysctl.d/99-sysprof.conf $O/persisted.conf",
        ])

    def analyze(self, ctx, out):
        """The change is in the kernel and pending."""
        checks = [_rc(out, "apply", "confirm: apply --confirm-within exits 0")]
        self.old = {k: out.raw(f"old.{k}") for k in _keys(CONFIRM_KEYS)}
        self.new = {k: value_of(out.raw(f"new.{k}")) for k in _keys(CONFIRM_KEYS)}
        self.persisted = out.text("persisted.conf")
        want = {k: str(v) for k, v, _ in CONFIRM_KEYS}
        checks.append(Check("confirm: unconfirmed values are in the kernel",
                            all(same_value(self.new[k], want[k]) for k in want),
                            f"kernel {self.new}, want {want}"))
        pending = (out.json("status.json") or {}).get("pending")
        checks.append(Check("confirm: status shows the pending change", bool(pending),
                            f"pending: {pending}"))
        return checks


class ConfirmAfterReboot:
    """Boot 3: the reboot reverted; the next command records it and writes nothing stale."""

    name = "confirm-after-reboot"
    timeout = 60

    def __init__(self, confirm):
        self.confirm = confirm

    def files(self, ctx):
        """Nothing beyond the image."""
        return {}

    def script(self, ctx):
        """Values at boot, `confirm`, values after, history, status, the persisted file."""
        keys = _keys(CONFIRM_KEYS)
        return "\n".join([
            "O=/out/confirm-after-reboot",
            save_raw(keys, "$O/boot"),
            "sysprof --color never confirm >$O/confirm.out 2>&1; echo $? >$O/confirm.rc",
            save_raw(keys, "$O/after"),
            "sysprof history --format json >$O/history.json 2>&1",
            "sysprof status --format json >$O/status.json 2>&1",
            "cp /etc/sysctl.d/99-sysprof.conf $O/persisted.conf",
        ])

    def analyze(self, ctx, out):
        """See the module doc."""
        keys = _keys(CONFIRM_KEYS)
        boot = {k: out.raw(f"boot.{k}") for k in keys}
        after = {k: out.raw(f"after.{k}") for k in keys}
        new = self.confirm.new
        checks = [Check("confirm: the reboot dropped the unconfirmed values",
                        all(boot[k] is not None and not same_value(value_of(boot[k]), new[k])
                            for k in keys),
                        f"after reboot {_show(boot)}, unconfirmed {new}")]
        untouched = [k for k in keys if k != RUNTIME_WRITE[0]]
        checks.append(Check("confirm: keys nobody else touched are back to the old values",
                            all(boot[k] == self.confirm.old.get(k) for k in untouched),
                            f"boot {_show(boot)}, before the apply {_show(self.confirm.old)}"))
        rc, text = out.rc("confirm.rc"), (out.text("confirm.out") or "").strip()
        checks.append(Check("confirm: after a reboot, confirm refuses", rc not in (0, None),
                            f"exit {rc}: {text[-300:]}"))
        checks.append(Check("confirm: the refusal names the reboot as the reason",
                            "reboot" in text.lower(), f"said: {text[-300:]}"))
        stale = {k: (value_of(boot[k]), value_of(after[k])) for k in keys if after[k] != boot[k]}
        checks.append(Check("confirm: no pre-reboot value written into the fresh kernel",
                            not stale, "changed by the command (boot -> after): "
                            + ", ".join(f"{k} {b} -> {a}" for k, (b, a) in stale.items())))
        checks += self._records(out, keys)
        return checks

    def _records(self, out, keys):
        entries = (out.json("history.json") or {}).get("entries") or []
        last = entries[-1]["record"] if entries else {}
        applied = [e for e in entries if e["record"]["kind"] == "apply"
                   and (e["record"].get("profile") or {}).get("name") == "lab-confirm"]
        checks = [Check("confirm: the rollback is recorded in the history",
                        last.get("kind") == "rollback" and bool(applied)
                        and not applied[-1].get("in_effect"),
                        f"last entry {last.get('kind')}, "
                        f"confirm apply in effect: {applied and applied[-1].get('in_effect')}")]
        status = out.json("status.json") or {}
        drift = sorted(d["key"] for d in status.get("drift", []) if d["key"] in keys)
        checks.append(Check("confirm: status shows nothing pending and no drift on its keys",
                            not status.get("pending") and not status.get("unfinished")
                            and not drift,
                            f"pending {status.get('pending')}, drift on {drift}"))
        persisted = out.text("persisted.conf")
        checks.append(Check("confirm: nothing was persisted",
                            persisted == self.confirm.persisted,
                            "99-sysprof.conf changed across the unconfirmed change"))
        return checks


def _show(raws):
    return {k: value_of(v) for k, v in raws.items()}
