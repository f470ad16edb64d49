#!/usr/bin/python3
"""Scaling out: two senningen-collector processes share one PostgreSQL database. Agents send
to one collector or the other, at the same time; both REST APIs then return the union of
their alerts and agents, each alert once.

Needs a PostgreSQL server: SENNINGEN_TEST_POSTGRES_URL (scripts/test starts one and sets it);
skipped without it. The test makes a database of its own there and drops it at the end.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_end_to_end as e2e  # noqa: E402  (the Collector and agent helpers)

URL = os.environ.get("SENNINGEN_TEST_POSTGRES_URL", "")
AGENTS_PER_COLLECTOR = 2


def psql(url, sql):
    res = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {res.stderr.strip()}")
    return res.stdout


def with_database(url, name):
    """URL with its database name replaced by NAME (the query string kept)."""
    base, sep, query = url.partition("?")
    return base[:base.rindex("/") + 1] + name + (sep + query if sep else "")


@unittest.skipUnless(URL, "SENNINGEN_TEST_POSTGRES_URL is not set: no PostgreSQL server to "
                          "test against (scripts/test starts one and sets it)")
class SharedPostgres(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="senningen-shared-pg-")
        self.database = "senningen_it_" + uuid.uuid4().hex
        psql(URL, f"CREATE DATABASE {self.database}")
        self.db_url = with_database(URL, self.database)
        self.collectors = []
        # The first collector takes --db on the command line, the second reads it from its
        # configuration file: both forms reach the same database.
        one = os.path.join(self.tmp.name, "one")
        two = os.path.join(self.tmp.name, "two")
        os.mkdir(one)
        os.mkdir(two)
        self.collectors.append(e2e.Collector(one, args=["--db", self.db_url]))
        config = os.path.join(two, "collector.ini")
        with open(config, "w") as f:
            f.write(f"[collector]\ndb = {self.db_url}\n")
        self.collectors.append(e2e.Collector(two, args=["--config", config],
                                             token=self.collectors[0].token))

    def tearDown(self):
        codes = [c.stop() for c in self.collectors]
        try:
            psql(URL, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        finally:
            self.tmp.cleanup()
        self.assertEqual(codes, [0] * len(self.collectors), "collectors stop cleanly on SIGTERM")

    def alerts(self, collector):
        status, _, body = collector.get("/api/v1/alerts?limit=1000")
        self.assertEqual(status, 200, body)
        return body["alerts"]

    def test_two_collectors_serve_the_union_of_what_each_received(self):
        # Every agent at once: half to one collector, half to the other.
        procs = []
        for i, collector in enumerate(self.collectors):
            for j in range(AGENTS_PER_COLLECTOR):
                agent = f"agent-{i + 1}-{j + 1}"
                out = os.path.join(self.tmp.name, agent + ".jsonl")
                queue = os.path.join(self.tmp.name, agent + "-queue.db")
                cmd = [e2e.AGENT, "--read", os.path.join(e2e.DEMO, "input.pcap"),
                       "--rules", e2e.RULES, "--intel", e2e.INTEL,
                       "--collector", collector.broker, "--agent-id", agent,
                       "--output", out, "--insecure", "--queue", queue]
                procs.append((agent, out, subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        emitted = {}
        for agent, out, proc in procs:
            _, err = proc.communicate(timeout=120)
            self.assertEqual(proc.returncode, 0, f"{agent}: {err}")
            self.assertIn("collector acknowledged all", err, agent)
            emitted[agent] = e2e.read_jsonl(out)
            self.assertGreater(len(emitted[agent]), 0, agent)

        expected = sorted(json.dumps(a, sort_keys=True)
                          for alerts in emitted.values() for a in alerts)
        expected_ids = sorted(a["alert"]["id"] for alerts in emitted.values() for a in alerts)
        self.assertEqual(len(expected_ids), len(set(expected_ids)))
        for collector in self.collectors:
            returned = self.alerts(collector)
            ids = [a["alert"]["id"] for a in returned]
            self.assertEqual(len(ids), len(set(ids)), "an alert was returned twice")
            # The union, whole: the same alerts, field for field, from either collector.
            self.assertEqual(sorted(json.dumps(a, sort_keys=True) for a in returned), expected)
            _, _, health = collector.get("/api/v1/health")
            self.assertEqual((health["status"], health["backend"], health["alerts"]),
                             ("ok", "postgresql", len(expected_ids)))
            for agent, alerts in emitted.items():
                _, _, mine = collector.get(f"/api/v1/alerts?agent={agent}&limit=1000")
                self.assertEqual(sorted(a["alert"]["id"] for a in mine["alerts"]),
                                 sorted(a["alert"]["id"] for a in alerts))

        # Agents reported to one collector each; both collectors list all of them.
        deadline = time.monotonic() + 10
        while True:
            listed = []
            for collector in self.collectors:
                _, _, body = collector.get("/api/v1/agents")
                listed.append(sorted(a["id"] for a in body["agents"]))
            if all(ids == sorted(emitted) for ids in listed) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(listed, [sorted(emitted)] * len(self.collectors))

        # One schema, migrated once (by whichever collector came first).
        versions = psql(self.db_url, "SELECT string_agg(version::text, ',' ORDER BY version)"
                                     " FROM schema_version").split()
        self.assertEqual(versions, [",".join(str(v) for v in range(1, schema_version() + 1))])


def schema_version():
    """The PostgreSQL schema version this build writes, from the store's header."""
    header = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "collector",
                          "include", "senningen", "collector", "postgres_store.h")
    with open(header, encoding="utf-8") as f:
        for line in f:
            if "kPostgresSchemaVersion =" in line:
                return int(line.split("=")[1].strip().rstrip(";"))
    raise AssertionError(f"no kPostgresSchemaVersion in {header}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
