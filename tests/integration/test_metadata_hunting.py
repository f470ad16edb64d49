#!/usr/bin/python3
"""Metadata forwarding and hunting end to end: a real collector with a CA made by
`senningen-collector ca init`, a real agent enrolled with it (mutual TLS, signed batches)
reading the it-analyzers capture with --forward-metadata, and the hunt endpoint
GET /api/v1/metadata finding what the capture holds (a DNS query name, an HTTP host, a TLS
server name, a file hash, an e-mail address) and nothing for a value it does not hold.

On SQLite always; on PostgreSQL too when SENNINGEN_TEST_POSTGRES_URL names a server
(scripts/test sets it), else that half is skipped.
"""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_end_to_end as e2e  # noqa: E402  (the account and API helpers)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.environ.get("SENNINGEN_AGENT", os.path.join(REPO, "build/agent/senningen-agent"))
COLLECTOR = os.environ.get("SENNINGEN_COLLECTOR",
                           os.path.join(REPO, "build/collector/senningen-collector"))
CAPTURE = os.path.join(REPO, "tests/golden/it-analyzers/input.pcap")


def run(*cmd, timeout=120):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class MetadataHunting(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="senningen-hunt-")
        self.dir = self.tmp.name
        self.ca = os.path.join(self.dir, "ca")
        res = run(COLLECTOR, "ca", "init", "--dir", self.ca)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
            self.proc.stdout.close()
            self.log.close()
            self.assertEqual(code, 0, "the collector must stop cleanly on SIGTERM")
        self.tmp.cleanup()

    def start_collector(self, db_spec):
        self.token = e2e.add_account(db_spec, self.dir, role="analyst")
        self.log_path = os.path.join(self.dir, "collector.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [COLLECTOR, "--ca-dir", self.ca, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
             "--db", db_spec],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        self.assertTrue(line.startswith("ready "), line)
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        self.broker, self.http = fields["broker"], "http://" + fields["http"]

    def enroll(self, name):
        bundle = os.path.join(self.dir, name + ".bundle")
        res = run(COLLECTOR, "enroll", "--dir", self.ca, "--agent", name, "--collector",
                  self.broker, "--output", bundle)
        self.assertEqual(res.returncode, 0, res.stderr)
        identity = os.path.join(self.dir, name + ".identity")
        res = run(AGENT, "enroll", bundle, "--dir", identity)
        self.assertEqual(res.returncode, 0, res.stderr)
        return identity

    def hunt(self, **params):
        status, ctype, body = e2e.api_get(
            self.http + "/api/v1/metadata?" + urllib.parse.urlencode(params), self.token)
        return status, ctype, body

    def hunt_all(self, **params):
        """Every page of a hunt, following next_cursor."""
        records, cursor = [], None
        for _ in range(100):
            query = dict(params, **({"cursor": cursor} if cursor else {}))
            status, _, body = self.hunt(**query)
            self.assertEqual(status, 200, body)
            records += body["records"]
            cursor = body.get("next_cursor")
            if not cursor:
                return records
        self.fail("more than 100 pages")

    def check(self, db_spec):
        self.start_collector(db_spec)
        agent = "hunter-" + uuid.uuid4().hex[:8]  # unique: a shared database holds others
        identity = self.enroll(agent)
        local = os.path.join(self.dir, "records.jsonl")
        res = run(AGENT, "--read", CAPTURE, "--identity", identity, "--forward-metadata",
                  "--metadata-log", local, "--collector-timeout", "60")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("collector acknowledged all", res.stderr)
        lines = e2e.read_jsonl(local)
        self.assertGreater(len(lines), 20)
        self.assertIn(f"{len(lines)} queued, {len(lines)} acknowledged, 0 refused by the "
                      "collector, 0 not queued", res.stderr)

        # Every record the agent logged is stored once, as it was written.
        stored = self.hunt_all(agent=agent, limit=7)
        self.assertEqual(len(stored), len(lines))
        self.assertEqual(sorted(json.dumps(r["record"], sort_keys=True) for r in stored),
                         sorted(json.dumps(r, sort_keys=True) for r in lines))
        stamps = [r["timestamp"] for r in stored]
        self.assertEqual(stamps, sorted(stamps, reverse=True))

        # A DNS query name from the capture.
        found = self.hunt_all(value="c2.bad-vendor.example", agent=agent)
        self.assertTrue(found)
        self.assertIn("dns", {r["type"] for r in found})
        for r in found:
            self.assertEqual(r["agent"], agent)
        dns = self.hunt_all(value="C2.Bad-Vendor.Example.", type="dns", agent=agent)
        want = [r for r in lines if r["event_type"] == "dns" and any(
            q.get("rrname") == "c2.bad-vendor.example" for q in r["dns"].get("queries", []))]
        self.assertEqual(len(dns), len(want))
        for r in dns:
            self.assertEqual(r["type"], "dns")
            self.assertEqual(r["flow_id"], str(r["record"]["flow_id"]))

        # An HTTP host (with and without its port), the URL, a TLS name, a file hash and name,
        # an e-mail address.
        http = self.hunt_all(value="files.bad-vendor.example", type="http", agent=agent)
        self.assertEqual(len(http), 4)
        self.assertEqual({r["record"]["http"]["uri"] for r in http},
                         {"/downloads/report.pdf", "/status", "/logo.png", "/upload"})
        url = self.hunt_all(value="http://files.bad-vendor.example/downloads/report.pdf")
        self.assertEqual([r["type"] for r in url if r["agent"] == agent], ["http"])
        tls = self.hunt_all(value="portal.bad-vendor.example", type="tls", agent=agent)
        self.assertEqual(len(tls), 1)
        sha = "f46d61ba08a1ce51eb55342194ee239f08e09edc799986f63752b5a84cede1ef"
        files = self.hunt_all(value=sha.upper(), agent=agent)
        self.assertEqual([r["type"] for r in files], ["files"])
        self.assertEqual(files[0]["record"]["files"]["sha256"], sha)
        self.assertEqual(len(self.hunt_all(value="payload.exe", type="files", agent=agent)), 2)
        smtp = self.hunt_all(value="spoofer@bad-sender.example", agent=agent)
        self.assertEqual([r["type"] for r in smtp], ["smtp"])

        # A value the capture does not hold finds nothing; so do filters that exclude.
        status, _, body = self.hunt(value="never-seen.example")
        self.assertEqual((status, body["count"], body["records"]), (200, 0, []))
        self.assertNotIn("next_cursor", body)
        self.assertEqual(self.hunt_all(value="c2.bad-vendor.example", agent="someone-else"), [])
        self.assertEqual(self.hunt_all(value="c2.bad-vendor.example", type="smb", agent=agent), [])
        self.assertEqual(self.hunt_all(value="c2.bad-vendor.example", agent=agent,
                                       until="2020-01-01T00:00:00Z"), [])

        # Bad requests are problems naming the parameter.
        for params, word in (({"value": "ab"}, "value"), ({"type": "DNS!"}, "type"),
                             ({"limit": "0"}, "limit"), ({"since": "yesterday"}, "since"),
                             ({"cursor": "m1.1.2.forged"}, "cursor"), ({"vaule": "x.example"},
                                                                        "vaule")):
            status, ctype, body = self.hunt(**params)
            self.assertEqual(status, 400, params)
            self.assertTrue(ctype.startswith("application/problem+json"))
            self.assertIn(word, body["detail"])
        status, _, _ = e2e.api_get(self.http + "/api/v1/metadata?value=c2.bad-vendor.example",
                                   "snt_not-a-token")
        self.assertEqual(status, 401)

        # The same capture again (a resumed or repeated run): nothing is stored twice.
        res = run(AGENT, "--read", CAPTURE, "--identity", identity, "--forward-metadata",
                  "--collector-timeout", "60")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(len(self.hunt_all(agent=agent, limit=1000)), len(lines))

    def test_sqlite(self):
        self.check("sqlite:" + os.path.join(self.dir, "alerts.db"))

    def test_postgresql(self):
        url = os.environ.get("SENNINGEN_TEST_POSTGRES_URL", "")
        if not url:
            self.skipTest("SENNINGEN_TEST_POSTGRES_URL is not set (scripts/test sets it)")
        self.check(url)


if __name__ == "__main__":
    unittest.main(verbosity=2)
