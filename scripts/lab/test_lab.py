"""Unit tests of the lab's host-side pieces that need no qemu (run by tests/lab.rs):
``cd scripts && python3 -m unittest lab.test_lab``."""

import gzip
import tempfile
import unittest
from pathlib import Path

from . import cpio, introspect, kernels
from .steps import Out, profile_yaml, same_value
from .steps.agreement import child_claim, child_truth, in_source, instances, writable_by_hook
from .steps.bounds import Bounds, bounds_on, refused_reason, resolve, same_number, skip_reason
from .steps.crash import _history_problems


class MirrorTest(unittest.TestCase):
    """The Debian mirror comes from the host's apt configuration."""

    def test_deb822_skips_security_and_disabled_stanzas(self):
        with tempfile.TemporaryDirectory() as tmp:
            etc = Path(tmp)
            (etc / "sources.list.d").mkdir()
            (etc / "sources.list.d" / "debian.sources").write_text(
                "Types: deb\nURIs: http://security.example/debian-security\n"
                "Suites: bookworm-security\nComponents: main\n\n"
                "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
                "Types: deb deb-src\nURIs: http://mirror.example/debian/\n"
                "Suites: bookworm bookworm-updates\nComponents: main\n")
            self.assertEqual(kernels.debian_mirror(etc), "http://mirror.example/debian")

    def test_one_line_format_with_options(self):
        with tempfile.TemporaryDirectory() as tmp:
            etc = Path(tmp)
            (etc / "sources.list").write_text(
                "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n")
            self.assertEqual(kernels.debian_mirror(etc), "http://m.example/debian")

    def test_no_archive_is_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaises(kernels.LabError):
                kernels.debian_mirror(Path(tmp))


class CpioTest(unittest.TestCase):
    """The archive is newc, deterministic, parents first, 512-byte aligned."""

    def test_layout(self):
        w = cpio.CpioWriter()
        w.file("etc/lab/x", b"abc", 0o755)
        w.symlink("bin/sh", "/bin/busybox")
        data = w.render()
        self.assertEqual(len(data) % 512, 0)
        self.assertTrue(data.startswith(b"070701"))
        names = [n for n in (b"etc", b"etc/lab", b"etc/lab/x", b"bin", b"bin/sh", b"TRAILER!!!")]
        positions = [data.index(n + b"\0") for n in names]
        self.assertEqual(positions, sorted(positions))
        self.assertEqual(data, _twin().render())
        self.assertEqual(gzip.decompress(w.render_gzip()), data)


def _twin():
    w = cpio.CpioWriter()
    w.file("etc/lab/x", b"abc", 0o755)
    w.symlink("bin/sh", "/bin/busybox")
    return w


class DumpTest(unittest.TestCase):
    """dump.sh lines become format-1 entries."""

    def test_parse(self):
        text = ("644\t/proc/sys/net/ipv4/conf/eth0.100/rp_filter\tok\t1\n"
                "200\t/proc/sys/vm/drop_caches\terr\t\n"
                "644\t/proc/sys/net/ipv4/tcp_rmem\tok\t4096\\t131072\\t6291456\n"
                "444\t/proc/sys/dev/cdrom/info\tok\ta\\nb\\\\c\n")
        dump = introspect.parse_dump(text)
        self.assertEqual(dump["net.ipv4.conf.eth0/100.rp_filter"], {"mode": "0644", "value": "1"})
        self.assertEqual(dump["vm.drop_caches"], {"mode": "0200", "value": None})
        self.assertEqual(dump["net.ipv4.tcp_rmem"]["value"], "4096\t131072\t6291456")
        self.assertEqual(dump["dev.cdrom.info"]["value"], "a\nb\\c")
        self.assertFalse(introspect.writable(dump["dev.cdrom.info"]))


class BoundsTest(unittest.TestCase):
    """HZ-dependent and symbolic bounds, and what counts as a contradiction."""

    def test_jiffies_bounds_follow_hz(self):
        self.assertEqual(resolve(8589934, 250), (8589934, ""))
        value, note = resolve(8589934, 1000)
        self.assertEqual(value, 2147483)
        self.assertIn("HZ=1000", note)
        self.assertEqual(resolve(-8589934, 100)[0], -21474836)
        self.assertEqual(resolve("-INT_MAX/HZ", 250)[0], -8589934)
        self.assertEqual(resolve(255, 250), (255, ""))
        with self.assertRaises(ValueError):
            resolve("HZ*2", 250)

    def test_judging_rows(self):
        judge = Bounds._judge
        ok = ["restored", "changed"]
        self.assertEqual(judge(["k", "min", "0", "ok", "0", *ok]), "")
        self.assertEqual(judge(["k", "max+1", "3", "Invalid argument", "1", *ok]), "")
        self.assertIn("accepted", judge(["k", "max+1", "3", "ok", "3", *ok]))
        self.assertIn("not EINVAL", judge(["k", "min-1", "-1", "Operation not permitted", "0",
                                           *ok]))
        self.assertIn("rejected", judge(["k", "max", "65535", "Invalid argument", "1024", *ok]))
        self.assertIn("not restored", judge(["k", "min", "0", "ok", "0", "not-restored",
                                             "changed"]))

    def test_a_dropped_negative_must_leave_the_value(self):
        judge = Bounds._judge
        kept = ["k", "min-1", "-1", "ok", "65536", "restored", "unchanged"]
        self.assertEqual(judge(kept, negative_ignored=True), "")
        self.assertIn("accepted", judge(kept))
        stored = ["k", "min-1", "-1", "ok", "-1", "restored", "changed"]
        self.assertIn("keeps the value", judge(stored, negative_ignored=True))
        refused = ["k", "min-1", "-1", "Invalid argument", "65536", "restored", "unchanged"]
        self.assertIn("keeps the value", judge(refused, negative_ignored=True))
        self.assertEqual(judge(refused), "")

    def test_a_key_that_is_another_keys_context_is_judged_on_its_own_rows(self):
        rows = [("kernel.sched_rt_runtime_us", "set", "-1", "ok", "950000", "kept", "changed"),
                ("kernel.sched_rt_period_us", "self", "1000000", "ok", "1000000", "restored",
                 "unchanged"),
                ("kernel.sched_rt_period_us", "min", "1", "ok", "1", "restored", "changed"),
                ("kernel.sched_rt_period_us", "min-1", "0", "Invalid argument", "1000000",
                 "restored", "unchanged"),
                ("kernel.sched_rt_runtime_us", "unset", "", "ok", "950000", "restored",
                 "unchanged"),
                ("kernel.sched_rt_period_us", "set", "2147483647", "ok", "1000000", "kept",
                 "changed"),
                ("kernel.sched_rt_runtime_us", "self", "950000", "ok", "950000", "restored",
                 "unchanged"),
                ("kernel.sched_rt_runtime_us", "min", "-1", "ok", "-1", "restored", "changed"),
                ("kernel.sched_rt_period_us", "unset", "", "ok", "1000000", "restored",
                 "unchanged")]
        text = "".join("\t".join(r) + "\n" for r in rows)
        probe = Bounds()
        probe.plan = {"kernel.sched_rt_period_us": [("self", "-"), ("min", 1), ("min-1", 0)],
                      "kernel.sched_rt_runtime_us": [("self", "-"), ("min", -1)]}
        checks = probe.analyze(None, Out({"bounds/result.tsv": text.encode()}, "bounds"))
        self.assertTrue(all(c.ok for c in checks), [c for c in checks if not c.ok])
        self.assertEqual(probe.tally["probed"], 2)
        self.assertEqual(probe.tally["confirmed"], 3)

    def test_bounds_follow_the_release(self):
        entry = {"kernel_bounds": {"min": 0, "max": 5},
                 "older_bounds": [{"before": "6.1", "min": 0, "max": 2,
                                   "negative_ignored": True},
                                  {"before": "6.12", "min": 0, "max": 3}]}
        self.assertEqual(bounds_on(entry, "5.10"), ({"min": 0, "max": 2}, True))
        self.assertEqual(bounds_on(entry, "6.1"), ({"min": 0, "max": 3}, False))
        self.assertEqual(bounds_on(entry, "6.12"), ({"min": 0, "max": 5}, False))
        self.assertEqual(bounds_on({"older_bounds": [{"before": "6.1"}]}, "5.10"),
                         (None, False))

    def test_a_value_outside_its_own_table_is_restored_through_a_pair_or_skipped(self):
        refused = ["k", "self", "0", "Invalid argument", "0", "restored", "unchanged"]
        self.assertIsNone(refused_reason("vm.dirty_bytes", refused))
        self.assertIn("outside its own table", refused_reason("kernel.max_rcu_stall_to_panic",
                                                               refused))
        denied = ["k", "self", "1", "Operation not supported", "1", "restored", "unchanged"]
        self.assertIn("not writable", refused_reason("kernel.sched_energy_aware", denied))
        self.assertIsNone(refused_reason("k", ["k", "self", "1", "ok", "1", "restored",
                                               "unchanged"]))

    def test_hex_read_backs_are_numbers(self):
        self.assertTrue(same_number("0xffffffff", "4294967295"))
        self.assertTrue(same_number("0x0000", "0"))
        self.assertFalse(same_number("1", "2147483647"))
        self.assertFalse(same_number("!", "1"))
        self.assertEqual(skip_reason({"trigger": True})[:9], "a trigger")
        self.assertIn("one-way", skip_reason({"one_way": {"note": "n"}}))
        self.assertIsNone(skip_reason({}))


class AgreementTest(unittest.TestCase):
    """Catalogue entries become concrete keys; validate's findings become claims."""

    def test_instances(self):
        self.assertEqual(instances("vm.swappiness"), ["vm.swappiness"])
        self.assertEqual(instances("net.ipv4.conf.*.rp_filter"),
                         ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"])

    def test_child_truth_counts_writes_a_permissions_hook_lets_through(self):
        writes = ("/proc/sys/kernel/msg_next_id\tInvalid argument\n"
                  "/proc/sys/kernel/osrelease\tPermission denied\n"
                  "/proc/sys/kernel/sem_next_id\tok\n")
        hooked = writable_by_hook(writes)
        self.assertEqual(hooked, {"kernel.msg_next_id", "kernel.sem_next_id"})
        ro = {"mode": "0444", "value": "-1"}
        dump = {"child_netns": {"kernel.msg_next_id": ro, "kernel.osrelease": ro,
                                "vm.swappiness": {"mode": "0644", "value": "60"}},
                "child_writable": hooked}
        self.assertEqual(child_truth(dump, "kernel.msg_next_id"), "writable")
        self.assertEqual(child_truth(dump, "kernel.osrelease"), "read-only")
        self.assertEqual(child_truth(dump, "vm.swappiness"), "writable")
        self.assertEqual(child_truth(dump, "net.core.rmem_max"), "absent")

    def test_source_directories_filled_at_run_time(self):
        source = {"kernel.sched_domain", "vm.swappiness"}
        self.assertTrue(in_source("kernel.sched_domain.*.*.flags", source))
        self.assertTrue(in_source("vm.swappiness", source))
        self.assertFalse(in_source("vm.swappiness_x", source))
        self.assertFalse(in_source("kernel.sched_rt_period_us", source))

    def test_child_claims(self):
        finding = {"rule": "not-writable-in-netns"}
        self.assertEqual(child_claim([]), "writable")
        self.assertEqual(child_claim([{**finding, "message": "k is read-only in a child"}]),
                         "read-only")
        self.assertEqual(child_claim([{**finding, "message": "k is absent in a child"}]),
                         "absent")
        self.assertEqual(child_claim([{**finding, "message": "k is not namespaced: ..."}]),
                         "global")
        read_only = {"rule": "read-only-key", "message": "k is read-only: ..."}
        self.assertEqual(child_claim([read_only]), "read-only")
        self.assertEqual(child_claim([read_only, {**finding, "message": "k is absent in a"}]),
                         "absent")


class CrashHistoryTest(unittest.TestCase):
    """The history must say what the kernel holds after a killed command."""

    def out(self, before, after):
        import json
        entry = lambda kind, live: {"record": {"kind": kind}, "in_effect": live}  # noqa: E731
        files = {"crash/0/history-before.json": json.dumps(
                     {"entries": [entry(*e) for e in before]}).encode(),
                 "crash/0/history.json": json.dumps(
                     {"entries": [entry(*e) for e in after]}).encode()}
        return Out(files, "crash")

    def test_agreeing_histories(self):
        self.assertEqual(_history_problems(self.out([], [("apply", True)]), 0, "apply", "new"),
                         [])
        self.assertEqual(_history_problems(self.out([], []), 0, "apply", "old"), [])
        rolled = [("apply", False), ("rollback", True)]
        self.assertEqual(_history_problems(self.out([("apply", True)], rolled), 0,
                                           "rollback", "old"), [])

    def test_disagreeing_histories(self):
        self.assertTrue(_history_problems(self.out([], []), 0, "apply", "new"))
        self.assertTrue(_history_problems(self.out([], [("apply", True)]), 0, "apply", "old"))
        self.assertTrue(_history_problems(self.out([("apply", True)], [("apply", True)]), 0,
                                          "rollback", "old"))


class ProfileTest(unittest.TestCase):
    """Test profiles carry a reason per key; numbers stay numbers."""

    def test_yaml(self):
        text = profile_yaml("p", "d", [("vm.swappiness", 17, "why"), ("x.y", "a b", "r")])
        self.assertIn("  vm.swappiness:\n    value: 17\n    reason: \"why\"", text)
        self.assertIn('value: "a b"', text)
        self.assertTrue(same_value("4096\t87380", "4096 87380"))
        self.assertFalse(same_value(None, "1"))


if __name__ == "__main__":
    unittest.main()
