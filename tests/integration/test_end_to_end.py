#!/usr/bin/python3
"""End to end: a real senningen-collector and a real senningen-agent as processes on
loopback, talking Broker; the collector stores into a real SQLite file and answers over HTTP.

Run by CTest with SENNINGEN_AGENT and SENNINGEN_COLLECTOR pointing at the built binaries.
"""
import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.environ.get("SENNINGEN_AGENT", os.path.join(REPO, "build/agent/senningen-agent"))
COLLECTOR = os.environ.get("SENNINGEN_COLLECTOR",
                           os.path.join(REPO, "build/collector/senningen-collector"))
RULES_TOOL = os.environ.get("SENNINGEN_RULES_TOOL", os.path.join(REPO, "build/rules/senningen-rules"))
DEMO = os.path.join(REPO, "tests/golden/demo")
RULES = os.path.join(REPO, "rules/packs/demo/demo.yar")
INTEL = os.path.join(REPO, "rules/packs/demo/demo.intel")


def add_account(db_spec, workdir, role="admin"):
    """Adds an account to the store DB_SPEC with the collector's CLI, as an operator would,
    and returns a new API bearer token for it."""
    name = "it-" + uuid.uuid4().hex[:8]
    password_file = os.path.join(workdir, name + ".password")
    with open(password_file, "w") as f:
        f.write("integration-test-password\n")
    res = subprocess.run([COLLECTOR, "user", "add", name, "--role", role, "--password-file",
                          password_file, "--db", db_spec], capture_output=True, text=True,
                         timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"user add failed: {res.stderr}")
    res = subprocess.run([COLLECTOR, "user", "token", name, "--label", "integration test",
                          "--db", db_spec], capture_output=True, text=True, timeout=60)
    if res.returncode != 0 or not res.stdout.startswith("snt_"):
        raise RuntimeError(f"user token failed: {res.stderr}")
    return res.stdout.strip()


def api_get(url, token, timeout=10):
    """GET URL with the bearer TOKEN: (status, content type, parsed JSON body)."""
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), json.load(e)


class Collector:
    """A collector process on free loopback ports, stopped with SIGTERM. Before it starts, an
    admin account is added to its store with the CLI; get() uses that account's token."""

    def __init__(self, workdir, db_name="alerts.db", args=None, token=None):
        """ARGS replace the default store (a SQLite file in WORKDIR), e.g. another --db. TOKEN:
        a token valid on that store already (e.g. a second collector on a shared database)."""
        self.db = os.path.join(workdir, db_name)
        self.log = open(os.path.join(workdir, "collector.log"), "w")
        if args is None:
            args = ["--db", "sqlite:" + self.db]
        self.token = token
        if self.token is None:
            self.token = add_account(args[args.index("--db") + 1], workdir)
        self.proc = subprocess.Popen(
            # These tests are about the alert path; mutual TLS and enrollment are covered by
            # test_transport_security.py, so the link here is explicitly insecure.
            [COLLECTOR, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", *args,
             "--insecure"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self._read_line(30)
        if not line.startswith("ready "):
            raise RuntimeError(f"collector did not start: {line!r}")
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        self.broker = fields["broker"]
        self.http = "http://" + fields["http"]

    def _read_line(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else ""

    def get(self, path):
        return api_get(self.http + path, self.token)

    def stored_ids(self):
        con = sqlite3.connect(self.db)
        try:
            return sorted(row[0] for row in con.execute("SELECT id FROM alerts"))
        finally:
            con.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


def run_agent(*args, timeout=120):
    if "--collector" in args:
        # Insecure like the collector above, with a fresh durable queue per run.
        args = (*args, "--insecure", "--queue",
                os.path.join(tempfile.mkdtemp(prefix="senningen-queue-"), "queue.db"))
    return subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=timeout)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def masked(alert):
    alert = json.loads(json.dumps(alert))
    alert["alert"]["id"] = "<masked>"
    alert["agent"]["id"] = "golden"
    return json.dumps(alert, sort_keys=True)


class EndToEnd(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="senningen-e2e-")
        self.collector = Collector(self.tmp.name)

    def tearDown(self):
        code = self.collector.stop()
        self.assertEqual(code, 0, "the collector must stop cleanly on SIGTERM")
        self.tmp.cleanup()

    def test_demo_capture_reaches_store_and_api_exactly(self):
        out = os.path.join(self.tmp.name, "agent.jsonl")
        res = run_agent("--read", os.path.join(DEMO, "input.pcap"), "--rules", RULES,
                        "--intel", INTEL, "--collector", self.collector.broker,
                        "--agent-id", "e2e-agent", "--output", out)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("collector acknowledged all", res.stderr)
        emitted = read_jsonl(out)

        # Exactly the alerts of the golden expectation, no more, no fewer.
        with open(os.path.join(DEMO, "expected.json")) as f:
            expected = sorted(masked(a) for a in json.load(f))
        self.assertEqual(sorted(masked(a) for a in emitted), expected)

        # The same alerts, by id, are in SQLite ...
        ids = sorted(a["alert"]["id"] for a in emitted)
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(self.collector.stored_ids(), ids)

        # ... and come back from the API, whole and newest first.
        status, ctype, body = self.collector.get("/api/v1/alerts")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("application/json"))
        self.assertEqual(body["count"], len(ids))
        by_id = {a["alert"]["id"]: a for a in emitted}
        for returned in body["alerts"]:
            self.assertEqual(returned, by_id[returned["alert"]["id"]])
        stamps = [a["timestamp"] for a in body["alerts"]]
        self.assertEqual(stamps, sorted(stamps, reverse=True))

        status, _, health = self.collector.get("/api/v1/health")
        self.assertEqual((status, health["status"], health["alerts"]), (200, "ok", len(ids)))

        # Filters work on the real data.
        _, _, crit = self.collector.get("/api/v1/alerts?severity=1")
        self.assertEqual([a["alert"]["signature"] for a in crit["alerts"]],
                         ["senningen_demo_implant_download"])
        _, _, none = self.collector.get("/api/v1/alerts?agent=someone-else")
        self.assertEqual(none["count"], 0)
        _, _, one = self.collector.get("/api/v1/alerts?limit=1")
        self.assertEqual(one["alerts"][0]["timestamp"], stamps[0])
        status, ctype, problem = self.collector.get("/api/v1/alerts?severity=9")
        self.assertEqual(status, 400)
        self.assertTrue(ctype.startswith("application/problem+json"))
        self.assertIn("severity", problem["detail"])

    def test_a_second_agent_run_adds_its_own_alerts(self):
        for n in (1, 2):
            res = run_agent("--read", os.path.join(DEMO, "input.pcap"), "--rules", RULES,
                            "--intel", INTEL, "--collector", self.collector.broker,
                            "--agent-id", f"agent-{n}", "--quiet")
            self.assertEqual(res.returncode, 0, res.stderr)
        with open(os.path.join(DEMO, "expected.json")) as f:
            per_run = len(json.load(f))
        self.assertEqual(len(self.collector.stored_ids()), 2 * per_run)
        _, _, body = self.collector.get("/api/v1/alerts?agent=agent-2")
        self.assertEqual(body["count"], per_run)


SHARED = os.environ.get("SENNINGEN_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))


class SharedCorpus(unittest.TestCase):
    """Every public capture in ../shared/data/pcaps goes through the agent without a crash."""

    def test_every_shared_capture_runs_cleanly(self):
        root = os.path.join(SHARED, "pcaps")
        if not os.path.isdir(root):
            self.skipTest(f"external corpus not present: {root}")
        captures = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                          if f.endswith((".pcap", ".pcapng", ".cap")))
        self.assertGreater(len(captures), 10)
        for capture in captures:
            with self.subTest(capture=os.path.relpath(capture, root)):
                res = run_agent("--read", capture, "--rules", RULES, "--intel", INTEL, "--quiet")
                # 0, or 65 for a capture that is itself cut short; never a signal.
                self.assertIn(res.returncode, (0, 65), res.stderr[-2000:])
                if res.returncode == 65:
                    self.assertIn(os.path.basename(capture), res.stderr)
                for line in res.stdout.splitlines():
                    json.loads(line)


class Errors(unittest.TestCase):
    """Bad input gives a clear message naming it and a documented exit code."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="senningen-err-")

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_unreachable_collector_is_retried_then_reported(self):
        # A port nobody listens on: bind one, close it, use it.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        started = time.monotonic()
        res = run_agent("--read", os.path.join(DEMO, "input.pcap"), "--rules", RULES,
                        "--collector", f"127.0.0.1:{port}", "--collector-timeout", "4")
        self.assertEqual(res.returncode, 69, res.stderr)
        self.assertIn(f"collector unreachable: 127.0.0.1:{port}", res.stderr)
        self.assertIn("retrying in", res.stderr)
        self.assertGreaterEqual(res.stderr.count("retrying in"), 2, "backs off and retries")
        self.assertIn("acknowledged 0 of", res.stderr)
        self.assertLess(time.monotonic() - started, 30)

    def test_workers_auto_by_default(self):
        # One worker on a small host, two when the agent may use four CPUs or more; the agent
        # says which and why. taskset pins it to one CPU: then it must choose one.
        res = run_agent("--read", os.path.join(DEMO, "input.pcap"), "--rules", RULES)
        self.assertEqual(res.returncode, 0, res.stderr)
        m = re.search(r"--workers auto: (\d) inspection workers? \((\d+) CPUs? available\)",
                      res.stderr)
        self.assertIsNotNone(m, res.stderr)
        workers, cpus = int(m.group(1)), int(m.group(2))
        self.assertLessEqual(cpus, len(os.sched_getaffinity(0)))
        self.assertEqual(workers, 2 if cpus >= 4 else 1)
        pinned = subprocess.run(["taskset", "-c", str(min(os.sched_getaffinity(0))), AGENT,
                                 "--read", os.path.join(DEMO, "input.pcap"), "--output",
                                 os.devnull], capture_output=True, text=True, timeout=60)
        self.assertEqual(pinned.returncode, 0, pinned.stderr)
        self.assertIn("--workers auto: 1 inspection worker (1 CPU available)", pinned.stderr)
        for bad in ("0", "17", "many"):
            res = run_agent("--read", os.path.join(DEMO, "input.pcap"), "--workers", bad)
            self.assertEqual(res.returncode, 64)
            self.assertIn(f"--workers '{bad}' is not 1..16 or auto", res.stderr)

    def test_flow_timeouts_options(self):
        # The golden case flow-timeouts runs the defaults; here the options set them and the
        # summary line counts what each ended. Its Modbus connection polls every 240 s for
        # 9000 s; its DNS queries are 400 s apart.
        capture = os.path.join(REPO, "tests/golden/flow-timeouts/input.pcap")
        for args, counts in ((["--absolute-timeout", "0"], "(2 idle, 0 at the absolute timeout"),
                             (["--idle-timeout", "200"], "(39 idle, 0 at the absolute timeout"),
                             (["--absolute-timeout", "1800"],
                              "(2 idle, 4 at the absolute timeout")):
            res = run_agent("--read", capture, *args)
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertIn(counts, res.stderr, args)
        for flag, bad, says in (("--idle-timeout", "0", "1..2592000"),
                                ("--idle-timeout", "five", "1..2592000"),
                                ("--absolute-timeout", "-1", "0..2592000"),
                                ("--absolute-timeout", "2592001", "0..2592000"),
                                ("--stats-interval", "86401", "0..86400"),
                                ("--stats-interval", "often", "0..86400")):
            res = run_agent("--read", capture, flag, bad)
            self.assertEqual(res.returncode, 64)
            self.assertIn(f"{flag} '{bad}' is not {says} seconds", res.stderr)

    def test_missing_capture(self):
        res = run_agent("--read", self.path("nope.pcap"))
        self.assertEqual(res.returncode, 66)
        self.assertIn("nope.pcap", res.stderr)

    def test_not_a_capture(self):
        with open(self.path("notes.pcap"), "w") as f:
            f.write("this is text, not a capture\n")
        res = run_agent("--read", self.path("notes.pcap"))
        self.assertEqual(res.returncode, 65)
        self.assertIn("notes.pcap", res.stderr)
        self.assertIn("not a pcap or pcapng file", res.stderr)

    def test_truncated_capture_keeps_what_was_read(self):
        with open(os.path.join(DEMO, "input.pcap"), "rb") as f:
            data = f.read()
        with open(self.path("cut.pcap"), "wb") as f:
            f.write(data[:len(data) - 30])
        res = run_agent("--read", self.path("cut.pcap"), "--rules", RULES, "--intel", INTEL)
        self.assertEqual(res.returncode, 65, res.stderr)
        self.assertIn("cut.pcap", res.stderr)
        self.assertIn("truncated", res.stderr)
        # Everything before the cut was inspected: the DNS and HTTP alerts are there.
        signatures = [json.loads(line)["alert"]["signature"] for line in res.stdout.splitlines()]
        self.assertIn("senningen_demo_implant_download", signatures)

    def test_rule_that_does_not_compile(self):
        with open(self.path("bad.yar"), "w") as f:
            f.write("rule ok { condition: true }\n\nrule broken {\n  strings: $a = \"x\"\n"
                    "  condition: $b\n}\n")
        res = run_agent("--read", os.path.join(DEMO, "input.pcap"), "--rules", self.path("bad.yar"))
        self.assertEqual(res.returncode, 78)
        # FILE:LINE: and YARA's own message (YARA places this error at the rule's last line).
        self.assertRegex(res.stderr, re.escape(self.path("bad.yar")) + r':6: undefined string "\$b"')

    def test_rules_tool_reports_what_the_agent_would_load(self):
        res = subprocess.run([RULES_TOOL, "check", RULES], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        version = subprocess.run([RULES_TOOL, "version", RULES], capture_output=True,
                                 text=True).stdout.strip()
        self.assertIn(version, res.stdout)
        # The agent's alerts carry the same pack version.
        out = run_agent("--read", os.path.join(DEMO, "input.pcap"), "--rules", RULES, "--quiet")
        packs = {json.loads(line)["alert"]["pack"] for line in out.stdout.splitlines()}
        self.assertEqual(packs, {version})
        with open(self.path("bad.yar"), "w") as f:
            f.write("rule a {\n condition: nosuchthing\n}\n")
        res = subprocess.run([RULES_TOOL, "check", self.path("bad.yar")], capture_output=True,
                             text=True)
        self.assertEqual(res.returncode, 1)
        self.assertIn(self.path("bad.yar") + ":2:", res.stderr)
        res = subprocess.run([RULES_TOOL, "check", self.path("missing.yar")], capture_output=True,
                             text=True)
        self.assertEqual(res.returncode, 66)

    def test_bad_intel_line_is_skipped_and_counted(self):
        with open(self.path("intel.dat"), "w") as f:
            f.write("#fields\tindicator\tindicator_type\tmeta.source\n"
                    "update.scada-vendor.example\tIntel::DOMAIN\tt\n"
                    "999.1.1.1\tIntel::ADDR\tt\n")
        res = run_agent("--read", os.path.join(DEMO, "input.pcap"), "--intel", self.path("intel.dat"))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(self.path("intel.dat") + ":3:", res.stderr)
        self.assertIn("1 lines skipped", res.stderr)
        # The good line still matches: the DNS query and the HTTP Host header name the domain.
        wheres = sorted(json.loads(line)["intel"]["where"] for line in res.stdout.splitlines())
        self.assertEqual(wheres, ["DNS::IN_REQUEST", "HTTP::IN_HOST_HEADER"])

    def test_file_hashes_and_what_the_intel_needs(self):
        pcap = os.path.join(DEMO, "input.pcap")
        full = run_agent("--read", pcap, "--metadata-log", self.path("full.json"),
                         "--output", "/dev/null")
        self.assertEqual(full.returncode, 0, full.stderr)
        files = [r["files"] for r in read_jsonl(self.path("full.json"))
                 if r["event_type"] == "files"]
        self.assertTrue(files)
        for f in files:
            self.assertEqual((len(f["md5"]), len(f["sha1"]), len(f["sha256"])), (32, 40, 64))
        # Only SHA-256 asked for, but an MD5 indicator loaded: MD5 is computed too, the agent
        # says so, and the indicator matches.
        with open(self.path("intel.dat"), "w") as f:
            f.write("#fields\tindicator\tindicator_type\tmeta.source\n"
                    f"{files[0]['md5']}\tIntel::FILE_HASH\tit\n")
        res = run_agent("--read", pcap, "--metadata-log", self.path("some.json"),
                        "--intel", self.path("intel.dat"), "--file-hashes", "sha256")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("--file-hashes: md5 computed for every file all the same", res.stderr)
        some = [r["files"] for r in read_jsonl(self.path("some.json"))
                if r["event_type"] == "files"]
        self.assertEqual([(f["md5"], f["sha256"]) for f in some],
                         [(f["md5"], f["sha256"]) for f in files])
        self.assertFalse(any("sha1" in f for f in some))
        hits = [json.loads(line)["intel"] for line in res.stdout.splitlines()]
        self.assertIn({"where": "Files::IN_HASH", "indicator": files[0]["md5"]},
                      [{"where": h["where"], "indicator": h["indicator"]} for h in hits])

    def test_usage_errors_are_all_reported(self):
        res = run_agent("--bogus", "--collector", "nocolon", "--file-hashes", "md5,crc32")
        self.assertEqual(res.returncode, 64)
        self.assertIn("unknown option '--bogus'", res.stderr)
        self.assertIn("--file-hashes 'md5,crc32' is not a comma-separated list of md5, sha1 "
                      "and sha256, or none", res.stderr)
        self.assertIn("one of --read CAPTURE or --interface IF is required", res.stderr)
        self.assertIn("'nocolon' is not HOST:PORT", res.stderr)

    def test_collector_bad_config(self):
        with open(self.path("c.ini"), "w") as f:
            f.write("[collector]\nlisten = 127.0.0.1:0\nhttp = nonsense\ncolour = blue\n")
        res = subprocess.run([COLLECTOR, "--config", self.path("c.ini")], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(res.returncode, 78)
        self.assertIn("http 'nonsense' is not HOST:PORT", res.stderr)
        self.assertIn("unknown key 'collector.colour'", res.stderr)

    def test_collector_from_config_file(self):
        db = self.path("from-config.db")
        with open(self.path("c.ini"), "w") as f:
            f.write(f"[collector]\nlisten = 127.0.0.1:0\nhttp = 127.0.0.1:0\ndb = sqlite:{db}\n"
                    "insecure = true\n")
        proc = subprocess.Popen([COLLECTOR, "--config", self.path("c.ini")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            self.assertTrue(ready)
            self.assertTrue(proc.stdout.readline().startswith("ready broker=127.0.0.1:"))
            self.assertTrue(os.path.exists(db))
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=20), 0)


class Accounts(unittest.TestCase):
    """The 'user' commands on a collector's store, and what the API makes of the result."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="senningen-accounts-")
        self.db = "sqlite:" + os.path.join(self.tmp.name, "alerts.db")

    def tearDown(self):
        self.tmp.cleanup()

    def user(self, *args, stdin=None):
        return subprocess.run([COLLECTOR, "user", *args, "--db", self.db], input=stdin,
                              capture_output=True, text=True, timeout=60)

    def test_cli_accounts_tokens_and_disabling_reach_the_api(self):
        res = self.user("add", "carol", "--role", "analyst", stdin="a-long-enough-password\n")
        self.assertEqual(res.returncode, 0, res.stderr)
        again = self.user("add", "carol", "--role", "admin", stdin="a-long-enough-password\n")
        self.assertEqual(again.returncode, 64)
        self.assertIn("account 'carol' exists already", again.stderr)
        argv = self.user("add", "dave", "--role", "admin", "--password", "secret-on-argv")
        self.assertEqual(argv.returncode, 64)
        self.assertIn("not taken on the command line", argv.stderr)
        short = self.user("add", "erin", "--role", "admin", stdin="short\n")
        self.assertEqual(short.returncode, 64)
        self.assertIn("too short", short.stderr)
        token = self.user("token", "carol", "--label", "test").stdout.strip()
        self.assertRegex(token, r"^snt_[0-9a-f]{64}$")

        collector = Collector(self.tmp.name, args=["--db", self.db], token=token)
        try:
            status, _, me = collector.get("/api/v1/me")
            self.assertEqual((status, me["user"], me["role"]), (200, "carol", "analyst"))
            status, _, _ = api_get(collector.http + "/api/v1/alerts", "snt_" + "0" * 64)
            self.assertEqual(status, 401)
            self.assertEqual(self.user("disable", "carol").returncode, 0)
            status, _, problem = collector.get("/api/v1/alerts")
            self.assertEqual(status, 401, problem)
        finally:
            self.assertEqual(collector.stop(), 0)
        listing = self.user("list").stdout
        self.assertRegex(listing, r"carol\s+analyst\s+disabled")

    def test_a_collector_without_accounts_says_how_to_add_one(self):
        collector = Collector(self.tmp.name, args=["--db", self.db], token="snt_none")
        try:
            status, _, problem = collector.get("/api/v1/alerts")
            self.assertEqual(status, 401)
            self.assertIn("user add NAME --role admin", problem["detail"])
            status, _, _ = collector.get("/api/v1/health")
            self.assertEqual(status, 200)
        finally:
            collector.stop()
        with open(os.path.join(self.tmp.name, "collector.log")) as f:
            self.assertIn("no accounts yet", f.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
