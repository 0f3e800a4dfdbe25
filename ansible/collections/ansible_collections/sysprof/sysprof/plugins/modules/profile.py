#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT OR Apache-2.0 (as sysprof)
"""Ansible module sysprof.sysprof.profile: apply or roll back a sysprof profile on a host.

The module is a thin wrapper: it runs the ``sysprof`` binary on the managed host with
``--format json`` and maps the JSON document to Ansible's result (``changed``, check mode, diff
mode, failure messages). Validation, planning, the transaction, health gates and rollout stages
all stay in sysprof.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: profile
short_description: Apply or roll back a sysprof sysctl profile
version_added: "0.1.0"
description:
  - Runs the C(sysprof) binary on the managed host to validate a sysctl profile and apply it
    all-or-nothing (snapshot, journal, read-back, persisted C(99-sysprof.conf)), or to roll back
    the newest change of that profile that is still in effect.
  - Optionally applies behind sysprof's health gates (O(watch)), only on hosts inside a rollout
    stage (O(stage)), or pending a later C(sysprof confirm) (O(confirm_within)).
  - The task reports C(changed) only when a kernel key or the persisted file changes.
  - In check mode nothing is written. O(state=applied) previews with C(sysprof apply --dry-run)
    against a throwaway state directory; O(state=rolled_back) with C(sysprof rollback --dry-run).
  - In diff mode the task shows each changed key as C(key = value) lines before and after, and
    the persisted sysctl.d file before and after.
  - A failure names sysprof's exit code and its meaning, and for an invalid profile every
    finding with its rule id and position (C(error[rule-id] key at file:line:col)).
author:
  - sysprof contributors
requirements:
  - sysprof on the managed host (C(cargo install --path .), or the static binary of
    C(scripts/build-static))
  - root on the managed host for real changes (C(become) in the play)
options:
  path:
    description:
      - The profile file on the managed host. Profiles named by its C(extends) must be next
        to it.
      - Required when O(state=applied). With O(state=rolled_back) it selects the newest change
        of the profile with the same C(name); without it the newest change in effect is undone.
    type: path
  state:
    description:
      - V(applied) validates and applies the profile (idempotent; in sync means unchanged).
      - V(rolled_back) restores the state from before the newest change of the profile that is
        still in effect (idempotent; nothing in effect means unchanged).
    type: str
    choices: [applied, rolled_back]
    default: applied
  netns:
    description:
      - Work inside this network namespace (a name under C(/run/netns) or a path such as
        C(/proc/PID/ns/net)) instead of the host's.
      - With it, sysprof persists nothing unless O(sysctl_d) is given, keeps its state in
        C(/var/lib/sysprof/netns/NAME), and refuses keys that are not per network namespace.
    type: str
  state_dir:
    description:
      - sysprof's state directory (snapshots, history, journal, lock).
      - Default C(/var/lib/sysprof), or C(/var/lib/sysprof/netns/NAME) with O(netns).
    type: path
  sysctl_d:
    description:
      - Directory of the persisted file C(99-sysprof.conf). Default C(/etc/sysctl.d).
    type: path
  persist:
    description:
      - Whether sysprof writes the persisted sysctl.d file (C(false) passes C(--no-persist)).
    type: bool
    default: true
  binary:
    description:
      - The sysprof executable, either a name looked up on the host's C(PATH) or a path.
    type: str
    default: sysprof
  watch:
    description:
      - Apply without persisting, sample the profile's health gates for this long (such as
        V(10m)), roll back and fail when a gate trips (sysprof exit 8), persist after a healthy
        window.
      - A detached sysprof watcher rolls the host back if Ansible or the connection dies during
        the window.
    type: str
  stage:
    description:
      - Apply only if this host's cohort is in the profile's rollout stage of this name.
        Outside it (sysprof exit 9) the task succeeds with C(changed=false) and
        C(outcome=not_in_stage).
      - Without O(watch) the stage's own C(watch) time applies.
    type: str
  host_id:
    description:
      - The id the cohort is computed from (default C(/etc/machine-id)), such as
        C({{ inventory_hostname }}).
    type: str
  confirm_within:
    description:
      - Apply without persisting; sysprof rolls the change back by itself unless
        C(sysprof confirm) runs on the host within this duration (such as V(15m)).
    type: str
notes:
  - Check mode and diff mode are fully supported.
  - Exit codes are those of sysprof's README; 9 (not in stage) is not a failure.
  - An interrupted earlier change (journal left behind) is finished or undone by the next real
    run; check mode only warns about it.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Apply the LVS-DR backend profile
  sysprof.sysprof.profile:
    path: /etc/sysprof/profiles/lvs-dr-backend.yaml
  become: true

- name: Apply behind health gates; roll back by itself if a gate trips
  sysprof.sysprof.profile:
    path: /etc/sysprof/profiles/lvs-dr-backend.yaml
    watch: 10m
  become: true

- name: Only the hosts in the profile's canary stage change
  sysprof.sysprof.profile:
    path: /etc/sysprof/profiles/lvs-dr-backend.yaml
    stage: canary
    host_id: "{{ inventory_hostname }}"
  become: true

- name: A container's network namespace, persisted next to its state
  sysprof.sysprof.profile:
    path: /srv/app/sysctl.yaml
    netns: app
    sysctl_d: /srv/app/sysctl.d

- name: Undo the profile
  sysprof.sysprof.profile:
    path: /etc/sysprof/profiles/lvs-dr-backend.yaml
    state: rolled_back
  become: true
"""

RETURN = r"""
outcome:
  description:
    - What sysprof did.
    - V(in_sync) nothing to change; V(applied) written and persisted; V(persisted) written,
      watched healthy and persisted; V(awaiting_confirmation) written, C(sysprof confirm) due;
      V(dry_run) check mode with something to change; V(not_in_stage) host outside O(stage);
      V(rolled_back) restored; V(nothing_in_effect) nothing to roll back.
  returned: always
  type: str
  sample: applied
profile:
  description: The profile's name.
  returned: when known
  type: str
  sample: lvs-dr-backend
changes:
  description: The keys changed (or, in check mode, that would change), in write order.
  returned: always
  type: list
  elements: dict
  sample: [{"key": "net.core.somaxconn", "before": "4096", "after": "16384"}]
persisted_file:
  description: The persisted sysctl.d file, when it changed (or would change).
  returned: always
  type: str
  sample: /etc/sysctl.d/99-sysprof.conf
snapshot:
  description: The history record of the change (C(sysprof show ID)); null in check mode.
  returned: always
  type: str
  sample: 5c0f7de699192b3887259b9b42c6a3db1e7a74ea88ebc758f12c10c4decd724e
stage:
  description: The host's placement when O(stage) is given (name, percent, host_id, cohort, in_stage).
  returned: when O(stage) is given
  type: dict
verdict:
  description: The health-gate verdict of a watched apply (per gate value, baseline, current, limit).
  returned: when O(watch) or a stage watch ran
  type: dict
findings:
  description: Errors and warnings sysprof found in an invalid profile (rule, severity, key,
    message, help, and C(at) as C(file:line:col)).
  returned: on failure with exit code 3
  type: list
  elements: dict
  sample: [{"rule": "not-writable-in-netns", "severity": "error", "key": "vm.swappiness",
            "at": "/etc/sysprof/profiles/app.yaml:6:3", "message": "…", "help": "…"}]
tripped:
  description: The health gates that tripped (gate, limit, threshold, value, baseline, current,
    and the same as one line of text).
  returned: on failure with exit code 8
  type: list
  elements: dict
rc:
  description: sysprof's exit code.
  returned: always
  type: int
  sample: 0
exit_meaning:
  description: What the exit code means (README "Exit codes").
  returned: always
  type: str
  sample: "success (diff: nothing to change)"
sysprof:
  description: The JSON document sysprof printed, unchanged.
  returned: on success
  type: dict
"""

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

# README "Exit codes", word for word (tests/ansible.rs keeps this in step with sysprof's table).
EXIT_MEANINGS = {
    0: "success (diff: nothing to change)",
    1: "unexpected failure",
    2: "diff --exit-code: changes are pending",
    3: "invalid profile, key or value (nothing was changed)",
    4: "the kernel refused a write; all keys restored",
    5: "a write failed and restoring failed too: check the host",
    6: "state store: lock busy, snapshot missing or corrupt, nothing to roll back",
    7: "sysctl root, network namespace or permissions unusable",
    8: "a health gate tripped (apply --watch rolled the change back)",
    9: "apply --stage: this host is not in the stage (nothing was changed)",
    10: "apply PLAN: the saved plan no longer matches this host (nothing was changed)",
    64: "command-line usage error",
}

NOT_IN_STAGE = 9
GATE_TRIPPED = 8
INVALID_INPUT = 3


def meaning(rc):
    """The README's meaning of a sysprof exit code."""
    return EXIT_MEANINGS.get(rc, "unknown exit code")


class Sysprof(object):
    """Runs the sysprof binary with the task's global flags and parses its JSON output."""

    def __init__(self, module):
        self.module = module
        p = module.params
        binary = p["binary"]
        if "/" in binary:
            if not os.access(binary, os.X_OK):
                module.fail_json(msg="sysprof binary %s is not executable" % binary)
            self.binary = binary
        else:
            self.binary = module.get_bin_path(binary, required=True)
        self.netns = p["netns"]
        self.state_dir = p["state_dir"]
        self.sysctl_d = p["sysctl_d"]
        self.persist = p["persist"]

    def flags(self, state_dir=None):
        """The global flags: JSON output, no colour, namespace, directories."""
        argv = ["--format", "json", "--color", "never"]
        if self.netns:
            argv += ["--netns", self.netns]
        state_dir = state_dir or self.state_dir
        if state_dir:
            argv += ["--state-dir", state_dir]
        if self.sysctl_d:
            argv += ["--sysctl-d", self.sysctl_d]
        if not self.persist:
            argv.append("--no-persist")
        return argv

    def run(self, args, state_dir=None):
        """Runs one command; returns (rc, parsed JSON document or None, stderr)."""
        argv = [self.binary] + self.flags(state_dir) + args
        rc, out, err = self.module.run_command(
            argv, environ_update={"NO_COLOR": "1", "LC_ALL": "C.UTF-8"}
        )
        try:
            doc = json.loads(out) if out.strip() else None
        except ValueError:
            doc = None
        return rc, doc, err

    def ok(self, args, what):
        """Runs a command that must succeed; fails the task otherwise."""
        rc, doc, err = self.run(args)
        if rc != 0 or doc is None:
            fail(self.module, rc, doc, err, what)
        return doc

    def where(self):
        """Where the keys live, for diff headers."""
        return "netns %s" % self.netns if self.netns else "host"


def fail(module, rc, doc, err, what, **extra):
    """Fails the task with sysprof's message, its help line and the exit code's meaning."""
    text = (doc or {}).get("error") or err.strip() or "no output"
    msg = "sysprof %s failed with exit %d [%s]: %s" % (what, rc, meaning(rc), text)
    help_line = (doc or {}).get("help")
    if help_line:
        msg += "; help: %s" % help_line
    module.fail_json(msg=msg, rc=rc, exit_meaning=meaning(rc), stderr=err, **extra)


def describe_finding(f):
    """`error[rule] key: message at file:line:col (help: …)`, one finding on one line."""
    at = f.get("at") or {}
    place = ""
    if at:
        place = " at %s:%s:%s" % (at.get("file"), at.get("line"), at.get("col"))
    key = " %s:" % f["key"] if f.get("key") else ":"
    text = "%s[%s]%s %s%s" % (f["severity"], f.get("rule"), key, f["message"], place)
    if f.get("help"):
        text += " (help: %s)" % f["help"]
    return text


def invalid(module, sp, rc, doc, err, what):
    """Exit 3: fetches the findings with `sysprof validate` (apply's JSON error only counts
    them) and fails with every error and warning named by its rule id."""
    _, checked, _ = sp.run(["validate", module.params["path"]])
    findings = []
    for prof in (checked or {}).get("profiles", []):
        findings += [
            f for f in prof.get("findings", []) if f.get("severity") in ("error", "warning")
        ]
    if not findings:
        fail(module, rc, doc, err, what)
    errors = [f for f in findings if f["severity"] == "error"] or findings
    msg = "sysprof %s failed with exit %d [%s]: %s" % (
        what,
        rc,
        meaning(rc),
        "; ".join(describe_finding(f) for f in errors),
    )
    module.fail_json(
        msg=msg,
        rc=rc,
        exit_meaning=meaning(rc),
        findings=[brief_finding(f) for f in findings],
    )


def brief_finding(f):
    """A finding for the task result: its rule, severity, key, message, help and position."""
    at = f.get("at") or {}
    return {
        "rule": f.get("rule"),
        "severity": f.get("severity"),
        "key": f.get("key"),
        "message": f.get("message"),
        "help": f.get("help"),
        "at": "%s:%s:%s" % (at.get("file"), at.get("line"), at.get("col")) if at else None,
    }


def describe_check(check):
    """One tripped gate: `TcpExt.ListenOverflows rose by 38 (38 → 76), limit max_increase 0`."""
    gate = check.get("gate") or {}
    counter, limit = gate.get("counter"), gate.get("limit")
    value, base, now = check.get("value"), check.get("baseline"), check.get("current")
    if value is None or base is None or now is None:
        return "%s: missing (%s)" % (counter, check.get("note") or "not on this kernel")
    what = {
        "max_increase": "rose by %s",
        "max_rate": "rose at %s/s",
        "max_ratio": "ratio %s",
        "max": "is at %s",
    }.get(limit, "= %s") % num(value)
    return "%s %s (%s → %s), limit %s %s" % (
        counter,
        what,
        num(base),
        num(now),
        limit,
        num(gate.get("threshold")),
    )


def num(x):
    """A number as sysprof prints it: integers without a fraction."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def tripped(module, rc, doc, err):
    """Exit 8: the watched change was rolled back; the task fails naming the gates."""
    checks = [describe_check(c) for c in doc.get("tripped", [])]
    undone = doc.get("rollback")
    if undone:
        restored = "rolled back %s: %d key(s) restored, snapshot %s" % (
            doc.get("profile"),
            len(undone["record"]["changes"]),
            (undone.get("id") or "-")[:12],
        )
    else:
        restored = "%s: the change had already been undone" % doc.get("profile")
    msg = "sysprof apply failed with exit %d [%s]: health gate tripped: %s; %s" % (
        rc,
        meaning(rc),
        "; ".join(checks),
        restored,
    )
    module.fail_json(
        msg=msg,
        rc=rc,
        exit_meaning=meaning(rc),
        changed=False,
        outcome="rolled_back",
        profile=doc.get("profile"),
        tripped=[brief_check(c) for c in doc.get("tripped", [])],
        stage=doc.get("stage"),
    )


def brief_check(check):
    """A tripped gate for the task result: counter, limit and the figures."""
    gate = check.get("gate") or {}
    return {
        "gate": gate.get("counter"),
        "limit": gate.get("limit"),
        "threshold": gate.get("threshold"),
        "value": check.get("value"),
        "baseline": check.get("baseline"),
        "current": check.get("current"),
        "text": describe_check(check),
    }


def effect(doc):
    """(outcome, record of the key changes, persisted-file change, snapshot id) of an apply."""
    if "result" in doc:  # a plain apply, a dry run, or an in-sync host under --watch
        result = doc["result"]
        record = result.get("record") or {}
        return result["outcome"], record, record.get("persist"), result.get("id")
    outcome = doc.get("outcome")
    applied = doc.get("applied") or {}
    record = applied.get("record") or {}
    persist, snapshot = None, applied.get("id")
    persisted = doc.get("persisted")
    if persisted:  # {id, seq, record} of the persisting record after a healthy watch
        persist, snapshot = persisted["record"].get("persist"), persisted["id"]
    return outcome, record, persist, snapshot


def file_changes(persist):
    """Whether a persisted-file change really changes the file."""
    return bool(persist) and persist.get("before") != persist.get("after")


def lines(changes, side):
    """The keys as sorted `key = value` lines (tuples with spaces, as sysctl.d writes them)."""
    ordered = sorted(changes, key=lambda c: c["key"])
    return "".join(
        "%s = %s\n" % (c["key"], " ".join((c[side] or "").split())) for c in ordered
    )


def diffs(sp, changes, persist):
    """Ansible diff entries: the keys before and after, then the persisted file."""
    out = []
    if changes:
        where = sp.where()
        out.append(
            {
                "before_header": "sysctl (%s) before" % where,
                "after_header": "sysctl (%s) after" % where,
                "before": lines(changes, "before"),
                "after": lines(changes, "after"),
            }
        )
    if file_changes(persist):
        path = persist["path"]
        before, after = persist.get("before"), persist.get("after")
        out.append(
            {
                "before_header": path if before is not None else "%s (absent)" % path,
                "after_header": path if after is not None else "%s (removed)" % path,
                "before": before or "",
                "after": after or "",
            }
        )
    return out


def warn_status(module, sp):
    """Check mode: warns about an interrupted or pending change the preview cannot account for;
    returns whether a journal is left behind."""
    rc, doc, _ = sp.run(["status"])
    if rc != 0 or not doc:
        return False
    if doc.get("unfinished"):
        module.warn(
            "an interrupted change is in the journal: the next real run finishes or undoes it "
            "first, so the preview may differ"
        )
    if doc.get("pending"):
        module.warn(
            "a change awaits `sysprof confirm` on this host: a real apply is refused (exit 6) "
            "until it is confirmed or rolled back"
        )
    return bool(doc.get("unfinished"))


def apply_args(params, check):
    """`apply PROFILE` with the rollout flags; `--dry-run` in check mode."""
    args = ["apply", params["path"]]
    if check:
        args.append("--dry-run")
    else:
        for flag, name in (("--watch", "watch"), ("--confirm-within", "confirm_within")):
            if params[name]:
                args += [flag, params[name]]
    if params["stage"]:
        args += ["--stage", params["stage"]]
    if params["host_id"]:
        args += ["--host-id", params["host_id"]]
    return args


def applied(module, sp):
    """state=applied: apply (or preview) the profile and map the outcome."""
    check = module.check_mode
    scratch = None
    if check:
        warn_status(module, sp)
        # A dry run still takes the lock and recovers in its state dir: give it a throwaway one,
        # so check mode writes nothing at all. The plan reads only the kernel and the file.
        scratch = tempfile.mkdtemp(prefix="sysprof-check-")
    try:
        rc, doc, err = sp.run(apply_args(module.params, check), state_dir=scratch)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if rc == NOT_IN_STAGE and doc:
        stage = doc.get("stage") or {}
        module.exit_json(
            changed=False,
            failed=False,  # Ansible fails any result whose rc is not 0 unless told otherwise
            outcome="not_in_stage",
            profile=doc.get("profile"),
            stage=stage,
            changes=[],
            persisted_file=None,
            snapshot=None,
            rc=rc,
            exit_meaning=meaning(rc),
            sysprof=doc,
            msg="host %s is not in stage %s (cohort %.2f, stage %s%%): nothing was changed"
            % (stage.get("host_id"), stage.get("name"), stage.get("cohort", 0), num(stage.get("percent"))),
        )
    if rc == GATE_TRIPPED and doc:
        tripped(module, rc, doc, err)
    if rc == INVALID_INPUT:
        invalid(module, sp, rc, doc, err, "apply")
    if rc != 0 or not doc:
        fail(module, rc, doc, err, "apply")
    outcome, record, persist, snapshot = effect(doc)
    changes = record.get("changes", [])
    changed = bool(changes) or file_changes(persist)
    if outcome == "in_sync" and changed:
        outcome = "applied"  # kernel in sync under --watch, persisted file rewritten
    for o in doc.get("boot_overrides") or []:
        module.warn("boot override: %s" % json.dumps(o, sort_keys=True))
    result = dict(
        changed=changed,
        outcome=outcome,
        profile=doc.get("profile"),
        changes=changes,
        persisted_file=persist["path"] if file_changes(persist) else None,
        snapshot=None if check else snapshot,
        stage=doc.get("stage"),
        verdict=doc.get("verdict"),
        rc=rc,
        exit_meaning=meaning(rc),
        sysprof=doc,
        msg=summary(outcome, doc, changes, persist),
    )
    if module._diff:
        result["diff"] = diffs(sp, changes, persist)
    module.exit_json(**result)


def summary(outcome, doc, changes, persist):
    """One line for the task's msg."""
    name = doc.get("profile")
    file_note = ", persisted to %s" % persist["path"] if file_changes(persist) else ""
    if outcome == "in_sync":
        return "%s: in sync, nothing to change" % name
    if outcome == "dry_run":
        would = ", would write %s" % persist["path"] if file_changes(persist) else ""
        return "%s: would change %d key(s)%s" % (name, len(changes), would)
    if outcome == "awaiting_confirmation":
        return "%s: %d key(s) applied, NOT persisted: run `sysprof confirm` within %ss" % (
            name,
            len(changes),
            doc.get("seconds_left"),
        )
    if outcome == "persisted":
        return "%s: healthy watch, %d key(s) kept%s" % (name, len(changes), file_note)
    return "%s: %d key(s) applied%s" % (name, len(changes), file_note)


def profile_name(module, sp):
    """The `name` of the profile at `path` (read by `sysprof validate`, valid or not)."""
    _, doc, err = sp.run(["validate", module.params["path"]])
    profiles = (doc or {}).get("profiles") or []
    if not profiles or not profiles[0].get("name"):
        fail(module, INVALID_INPUT, doc, err, "validate")
    return profiles[0]["name"]


def rolled_back(module, sp):
    """state=rolled_back: undo the newest change of the profile still in effect, if any."""
    name = profile_name(module, sp) if module.params["path"] else None
    history = sp.ok(["history"], "history").get("entries", [])
    target = None
    for entry in reversed(history):
        prof = entry["record"].get("profile") or {}
        if entry.get("in_effect") and (name is None or prof.get("name") == name):
            target = entry
            break
    if target is None:
        module.exit_json(
            changed=False,
            outcome="nothing_in_effect",
            profile=name,
            changes=[],
            persisted_file=None,
            snapshot=None,
            rc=0,
            exit_meaning=meaning(0),
            sysprof=None,
            msg="no change of %s is in effect: nothing to roll back" % (name or "any profile"),
        )
    check = module.check_mode
    if check and warn_status(module, sp):
        module.exit_json(changed=True, outcome="dry_run", profile=name, changes=[],
                         persisted_file=None, snapshot=None, rc=0, exit_meaning=meaning(0),
                         sysprof=None, msg="cannot preview the rollback before the interrupted "
                         "change is recovered")
    args = ["rollback", "--to", target["id"]] + (["--dry-run"] if check else [])
    rc, doc, err = sp.run(args)
    if rc != 0 or not doc:
        fail(module, rc, doc, err, "rollback")
    done = doc["rollback"]
    record = done["record"]
    changes, persist = record.get("changes", []), record.get("persist")
    changed = bool(changes) or file_changes(persist)
    result = dict(
        changed=changed,
        outcome="dry_run" if check else "rolled_back",
        profile=(target["record"].get("profile") or {}).get("name"),
        changes=changes,
        persisted_file=persist["path"] if file_changes(persist) else None,
        snapshot=done.get("id"),
        rc=rc,
        exit_meaning=meaning(rc),
        sysprof=doc,
        msg="%s the state from before %s (#%s): %d key(s)%s"
        % (
            "would restore" if check else "restored",
            target["id"][:12],
            target["seq"],
            len(changes),
            ", persisted file" if file_changes(persist) else "",
        ),
    )
    if module._diff:
        result["diff"] = diffs(sp, changes, persist)
    module.exit_json(**result)


def main():
    """Entry point."""
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            state=dict(type="str", default="applied", choices=["applied", "rolled_back"]),
            netns=dict(type="str"),
            state_dir=dict(type="path"),
            sysctl_d=dict(type="path"),
            persist=dict(type="bool", default=True),
            binary=dict(type="str", default="sysprof"),
            watch=dict(type="str"),
            stage=dict(type="str"),
            host_id=dict(type="str"),
            confirm_within=dict(type="str"),
        ),
        required_if=[("state", "applied", ["path"])],
        supports_check_mode=True,
    )
    sp = Sysprof(module)
    if module.params["state"] == "applied":
        applied(module, sp)
    else:
        rolled_back(module, sp)


if __name__ == "__main__":
    main()
