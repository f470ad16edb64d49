#!/usr/bin/python3
"""File inspection with the real senningen-agent: `scan` (exit codes like yara, alerts with file
context and digests, the shared rule sets each in its own namespace, the scan cache across
runs) and `watch` (an alert within a second of a drop, modify, move in, delete, a cache that
survives a restart, a clean stop on SIGTERM).

Run by CTest with SENNINGEN_AGENT pointing at the built binary; SENNINGEN_SHARED_DATA names
the shared data folder (tests that need it are skipped, saying so, when it is absent).
"""
import glob
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.environ.get("SENNINGEN_AGENT", os.path.join(REPO, "build/agent/senningen-agent"))
SHARED = os.environ.get("SENNINGEN_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))

# Assembled at run time so that this file is not itself a match.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!" + "$H+H*").encode()
RULE = ('rule eicar_test { meta: severity = 1 strings: $e = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" '
        'condition: $e }\n'
        'rule dropped_exe { condition: extension == ".exe" and filename contains "dropper" }\n')


def run(args, **kw):
    return subprocess.run([AGENT] + args, capture_output=True, text=True, timeout=300, **kw)


def alerts_of(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class ScanCommand(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="senningen-scan-")
        self.rules = os.path.join(self.tmp, "rules.yar")
        with open(self.rules, "w") as f:
            f.write(RULE)
        self.tree = os.path.join(self.tmp, "tree")
        os.makedirs(os.path.join(self.tree, "sub"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def put(self, rel, data):
        path = os.path.join(self.tree, rel)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_exit_codes_like_yara(self):
        self.put("clean.txt", b"nothing to see")
        r = run(["scan", self.tree, "--rules", self.rules, "--quiet"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "")
        bad = self.put("sub/payload.bin", b"head " + EICAR)
        r = run(["scan", self.tree, "--rules", self.rules, "--quiet", "--threads", "2"])
        self.assertEqual(r.returncode, 1, r.stderr)
        [alert] = alerts_of(r.stdout)
        self.assertEqual(alert["alert"]["signature"], "eicar_test")
        self.assertEqual(alert["alert"]["kind"], "file")
        with open(bad, "rb") as f:
            data = f.read()
        self.assertEqual(alert["file"]["path"], os.path.realpath(bad))
        self.assertEqual(alert["file"]["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(alert["file"]["sha1"], hashlib.sha1(data).hexdigest())
        self.assertEqual(alert["file"]["md5"], hashlib.md5(data).hexdigest())
        self.assertEqual(alert["file"]["size"], len(data))
        self.assertEqual(alert["matches"][0]["offset"], 5 + 28)
        # Errors: a PATH that does not exist, rules that do not compile, a bad option.
        missing = run(["scan", os.path.join(self.tmp, "nope"), "--rules", self.rules])
        self.assertEqual(missing.returncode, 2)
        self.assertIn(os.path.join(self.tmp, "nope"), missing.stderr)
        broken = os.path.join(self.tmp, "broken.yar")
        with open(broken, "w") as f:
            f.write("rule x { condition: nonsense }\n")
        r = run(["scan", self.tree, "--rules", broken])
        self.assertEqual(r.returncode, 2)
        self.assertIn(broken + ":1:", r.stderr)
        r = run(["scan", self.tree, "--threads", "0", "--frobnicate"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--threads '0' is not 1..32", r.stderr)
        self.assertIn("unknown option '--frobnicate'", r.stderr)

    def test_externals_intel_and_output_file(self):
        exe = self.put("sub/dropper.exe", b"MZ harmless")
        with open(exe, "rb") as f:
            sha256 = hashlib.sha256(f.read()).hexdigest()
        intel = os.path.join(self.tmp, "files.intel")
        with open(intel, "w") as f:
            f.write("#fields\tindicator\tindicator_type\tmeta.source\n")
            f.write(sha256.upper() + "\tIntel::FILE_HASH\tcert-feed\n")
        out = os.path.join(self.tmp, "alerts.jsonl")
        r = run(["scan", self.tree, "--rules", self.rules, "--intel", intel, "--output", out,
                 "--quiet"])
        self.assertEqual(r.returncode, 1, r.stderr)
        with open(out) as f:
            alerts = alerts_of(f.read())
        names = sorted(a["alert"]["signature"] for a in alerts)
        self.assertEqual(len(alerts), 2, names)
        self.assertIn("dropped_exe", names)
        intel_alert = next(a for a in alerts if a["alert"]["source"] == "intel")
        self.assertEqual(intel_alert["intel"]["indicator_type"], "Intel::FILE_HASH")
        self.assertEqual(intel_alert["intel"]["sources"], ["cert-feed"])

    def test_counts_what_it_cannot_scan_and_goes_on(self):
        self.put("ok.bin", EICAR)
        os.mkfifo(os.path.join(self.tree, "fifo"))
        os.symlink("/etc/passwd", os.path.join(self.tree, "escape"))
        os.symlink("loop-b", os.path.join(self.tree, "loop-a"))
        os.symlink("loop-a", os.path.join(self.tree, "loop-b"))
        self.put("big.bin", b"x" * 5000)
        r = run(["scan", self.tree, "--rules", self.rules, "--max-size", "4K"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(alerts_of(r.stdout)), 1)
        self.assertIn("big.bin: 5000 bytes is over the cap of 4096 (too_large)", r.stderr)
        self.assertIn("not_regular 1", r.stderr)
        self.assertIn("symlink 3", r.stderr)
        self.assertIn("too_large 1", r.stderr)

    def test_cache_skips_unchanged_files_on_the_next_run(self):
        for i in range(20):
            self.put(f"f{i}.txt", os.urandom(1000))
        cache = os.path.join(self.tmp, "cache")
        first = run(["scan", self.tree, "--rules", self.rules, "--cache", cache])
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("20 files scanned", first.stderr)
        second = run(["scan", self.tree, "--rules", self.rules, "--cache", cache])
        self.assertIn("0 files scanned", second.stderr)
        self.assertIn("20 unchanged (cache)", second.stderr)
        with open(self.rules, "a") as f:
            f.write("rule another { condition: false }\n")
        third = run(["scan", self.tree, "--rules", self.rules, "--cache", cache])
        self.assertIn("20 files scanned", third.stderr)  # new rules: everything again

    def test_shared_rule_sets_each_in_its_namespace(self):
        yara_dir = os.path.join(SHARED, "yara")
        samples = os.path.join(SHARED, "samples")
        if not os.path.isdir(yara_dir) or not os.path.isfile(os.path.join(samples, "eicar.com")):
            self.skipTest(f"shared YARA data absent at {SHARED}")
        args = ["scan", samples, "--exclude", "*.tsv", "--quiet",
                "--rules", "yara-rules=" + os.path.join(yara_dir, "yara-rules"),
                "--rules", "signature-base=" + os.path.join(yara_dir, "signature-base"),
                "--rules", "elastic=" + os.path.join(yara_dir, "elastic")]
        ext = os.path.join(yara_dir, "needs-modules-or-externals")
        for path in sorted(glob.glob(os.path.join(ext, "signature-base_*.yar"))):
            args += ["--rules", "externals=" + path]
        args += ["--rules", "cuckoo=" + os.path.join(ext, "yara-rules_MALW_AZORULT_needs-cuckoo.yar")]
        r = run(args)
        self.assertEqual(r.returncode, 1, r.stderr[-2000:])
        got = set()
        for a in alerts_of(r.stdout):
            ns, rule = a["alert"]["signature"].split(":", 1)
            got.add((ns, rule, "samples/" + os.path.basename(a["file"]["path"])))
        expected = set()
        with open(os.path.join(samples, "EXPECTED-yara-4.2.3-matches.tsv")) as f:
            next(f)
            for line in f:
                ruleset, rule, path = line.rstrip("\n").split("\t")
                expected.add((ruleset, rule, path))
        self.assertEqual(got, expected)


class WatchCommand(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="senningen-watch-")
        self.watched = os.path.join(self.tmp, "watched")
        self.outside = os.path.join(self.tmp, "outside")
        os.makedirs(self.watched)
        os.makedirs(self.outside)
        self.rules = os.path.join(self.tmp, "rules.yar")
        with open(self.rules, "w") as f:
            f.write(RULE)
        self.out = os.path.join(self.tmp, "alerts.jsonl")
        self.cache = os.path.join(self.tmp, "scan.cache")
        self.config = os.path.join(self.tmp, "agent.conf")
        with open(self.config, "w") as f:
            f.write(f"watch = {self.watched}\nrules = {self.rules}\noutput = {self.out}\n"
                    f"cache_file = {self.cache}\ndebounce_ms = 100\nexclude = *.partial\n"
                    "full_scan_interval = 1h\ncpu_percent = 50\n")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, marker="[watch] ready"):
        self.proc = subprocess.Popen([AGENT, "watch", "--config", self.config],
                                     stderr=subprocess.PIPE)
        # Raw reads: a buffered readline() could hold the marker line while select() waits.
        self.log = []
        pending = b""
        fd = self.proc.stderr.fileno()
        deadline = time.time() + 60
        while time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            self.log += [line.decode(errors="replace") + "\n" for line in lines]
            if any(marker in line for line in self.log):
                return
        self.fail("watch did not become ready:\n" + "".join(self.log))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        self.log.append(err.decode(errors="replace"))
        return self.proc.returncode

    def alerts(self):
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            return alerts_of(f.read())

    def wait_alerts(self, count, limit):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if len(self.alerts()) >= count:
                return True
            time.sleep(0.01)
        return False

    def test_drop_modify_move_in_delete_and_restart(self):
        self.put_pre = os.path.join(self.watched, "before.txt")
        with open(self.put_pre, "w") as f:
            f.write("clean file present at start")
        self.start("start-up full scan")
        # A drop: the alert must be in the output within a second.
        t0 = time.monotonic()
        with open(os.path.join(self.watched, "drop.bin"), "wb") as f:
            f.write(EICAR)
        self.assertTrue(self.wait_alerts(1, 1.0), "no alert within 1 s of the drop")
        latency = time.monotonic() - t0
        # Modify a clean file so that it matches.
        with open(self.put_pre, "ab") as f:
            f.write(EICAR)
        self.assertTrue(self.wait_alerts(2, 3.0), "no alert after the modification")
        # Move a file in from outside the tree, into a new subdirectory too.
        moved = os.path.join(self.outside, "dropper.exe")
        with open(moved, "wb") as f:
            f.write(b"MZ")
        os.rename(moved, os.path.join(self.watched, "dropper.exe"))
        self.assertTrue(self.wait_alerts(3, 3.0), "no alert after the move")
        os.makedirs(os.path.join(self.watched, "new", "dir"))
        time.sleep(0.2)
        with open(os.path.join(self.watched, "new", "dir", "x.bin"), "wb") as f:
            f.write(EICAR)
        self.assertTrue(self.wait_alerts(4, 3.0), "no alert in a new subdirectory")
        # A file deleted right after it was written, and an excluded one: no alert, no error.
        gone = os.path.join(self.watched, "gone.bin")
        with open(gone, "wb") as f:
            f.write(EICAR)
        os.unlink(gone)
        with open(os.path.join(self.watched, "x.partial"), "wb") as f:
            f.write(EICAR)
        time.sleep(0.5)
        self.assertEqual(len(self.alerts()), 4)
        self.assertEqual(self.stop(), 0, "".join(self.log))
        paths = sorted(os.path.basename(a["file"]["path"]) for a in self.alerts())
        self.assertEqual(paths, ["before.txt", "drop.bin", "dropper.exe", "x.bin"])
        for a in self.alerts():
            self.assertEqual(a["alert"]["kind"], "file")
            self.assertEqual(len(a["file"]["sha256"]), 64)
        self.assertTrue(os.path.exists(self.cache))
        print(f"watch latency: drop to alert {latency * 1000:.0f} ms")

        # A restart: the clean files are known from the cache and not read again.
        for i in range(10):
            with open(os.path.join(self.watched, f"clean{i}.txt"), "w") as f:
                f.write("clean " * i)
        self.start("start-up full scan")
        self.assertEqual(self.stop(), 0)
        self.start("start-up full scan")
        text = "".join(self.log)
        self.assertEqual(self.stop(), 0)
        self.assertIn("start-up full scan: 4 files scanned, 10 unchanged", text)

    def test_bad_config_names_every_problem(self):
        with open(self.config, "w") as f:
            f.write("watch = relative\nthreads = lots\nmystery = 1\n")
        r = subprocess.run([AGENT, "watch", "--config", self.config], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 78)
        self.assertIn(self.config + ":1: watch = 'relative' is not an absolute path", r.stderr)
        self.assertIn(self.config + ":2: threads = 'lots' is not 1..32", r.stderr)
        self.assertIn(self.config + ":3: unknown key 'mystery'", r.stderr)
        r = subprocess.run([AGENT, "watch", "--config", os.path.join(self.tmp, "none.conf")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 66)
        self.assertIn("none.conf", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
