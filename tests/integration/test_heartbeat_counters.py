#!/usr/bin/python3
"""The heartbeat's counters reach GET /api/v1/agents/{id}: files scanned (files carried by
traffic, from a capture) and kernel drops (a live capture on loopback whose ring buffer is made
to overflow while the agent is stopped with SIGSTOP). Real collector and agent processes,
enrolled with the collector's CA. The live part needs root (capture on lo) and is skipped
otherwise.
"""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_end_to_end as e2e  # noqa: E402  (add_account: the API needs a token)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.environ.get("SENNINGEN_AGENT", os.path.join(REPO, "build/agent/senningen-agent"))
COLLECTOR = os.environ.get("SENNINGEN_COLLECTOR",
                           os.path.join(REPO, "build/collector/senningen-collector"))
FILES_CAPTURE = os.path.join(REPO, "tests/golden/it-analyzers/input.pcap")
FILES_RULES = os.path.join(REPO, "tests/golden/it-analyzers/rules.yar")


def run(*cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class HeartbeatCounters(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="senningen-hb-")
        cls.dir = cls.tmp.name
        cls.ca = os.path.join(cls.dir, "ca")
        res = run(COLLECTOR, "ca", "init", "--dir", cls.ca)
        assert res.returncode == 0, res.stderr
        db = "sqlite:" + os.path.join(cls.dir, "alerts.db")
        # An analyst may read agents; the token is made with the CLI before the collector runs.
        cls.token = e2e.add_account(db, cls.dir, role="analyst")
        cls.log = open(os.path.join(cls.dir, "collector.log"), "w")
        cls.proc = subprocess.Popen(
            [COLLECTOR, "--ca-dir", cls.ca, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
             "--db", db],
            stdout=subprocess.PIPE, stderr=cls.log, text=True)
        ready, _, _ = select.select([cls.proc.stdout], [], [], 30)
        line = cls.proc.stdout.readline() if ready else ""
        assert line.startswith("ready "), line
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        cls.broker, cls.http = fields["broker"], "http://" + fields["http"]

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(timeout=20)
        cls.proc.stdout.close()
        cls.log.close()
        cls.tmp.cleanup()

    def enroll(self, name):
        bundle = os.path.join(self.dir, name + ".bundle")
        res = run(COLLECTOR, "enroll", "--dir", self.ca, "--agent", name,
                  "--collector", self.broker, "--output", bundle)
        self.assertEqual(res.returncode, 0, res.stderr)
        identity = os.path.join(self.dir, name + ".identity")
        res = run(AGENT, "enroll", bundle, "--dir", identity)
        self.assertEqual(res.returncode, 0, res.stderr)
        return identity

    def agent_status(self, name):
        try:
            req = urllib.request.Request(self.http + "/api/v1/agents/" + name,
                                         headers={"Authorization": "Bearer " + self.token})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def test_files_scanned_from_traffic(self):
        identity = self.enroll("files-agent")
        records = os.path.join(self.dir, "records.jsonl")
        res = run(AGENT, "--read", FILES_CAPTURE, "--rules", FILES_RULES, "--identity", identity,
                  "--metadata-log", records, "--heartbeat", "1", "--collector-timeout", "30",
                  timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(records) as f:
            files = sum(1 for line in f if json.loads(line).get("event_type") == "files")
        self.assertGreater(files, 0, "the capture carries files")
        status = self.agent_status("files-agent")
        self.assertIsNotNone(status)
        self.assertEqual(status["state"], "stopped")  # its last heartbeat, sent at exit
        self.assertEqual(status["counters"]["files_scanned"], files)
        self.assertEqual(status["counters"]["kernel_drops"], 0)  # a file has no kernel

    @unittest.skipUnless(os.geteuid() == 0, "live capture on lo needs root")
    def test_kernel_drops_of_a_live_capture(self):
        identity = self.enroll("live-agent")
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        log_path = os.path.join(self.dir, "live-agent.log")
        with open(log_path, "w") as log:
            agent = subprocess.Popen(
                [AGENT, "--interface", "lo", "--bpf", "udp and dst port %d" % port,
                 "--snaplen", "2048", "--buffer-size", "262144", "--identity", identity,
                 "--heartbeat", "1",
                 "--queue", os.path.join(self.dir, "live.db")],
                stdout=subprocess.DEVNULL, stderr=log)
            try:
                deadline = time.time() + 30
                while time.time() < deadline:
                    status = self.agent_status("live-agent")
                    if status and status["state"] == "online":
                        break
                    time.sleep(0.2)
                self.assertEqual(status["state"], "online", open(log_path).read())
                # Stopped, the agent reads nothing: 20 MB into a 256 KiB ring cannot all fit,
                # and what fits is read after SIGCONT.
                agent.send_signal(signal.SIGSTOP)
                out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                payload = b"x" * 1000
                for _ in range(20000):
                    out.sendto(payload, ("127.0.0.1", port))
                out.close()
                agent.send_signal(signal.SIGCONT)
                deadline = time.time() + 30
                counters = {}
                while time.time() < deadline:
                    counters = self.agent_status("live-agent")["counters"]
                    if counters["kernel_drops"] > 0 and counters["packets"] > 0:
                        break
                    time.sleep(0.2)
                self.assertGreater(counters["kernel_drops"], 0, counters)
                self.assertGreater(counters["packets"], 0, counters)
                # lo shows each packet twice (out and in); what was read was not dropped.
                self.assertLessEqual(counters["packets"] + counters["kernel_drops"], 20000 * 2,
                                     counters)
            finally:
                agent.send_signal(signal.SIGCONT)
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=60)
                sink.close()
        # The agent's own account at exit holds at least what its heartbeat reported.
        with open(log_path) as f:
            text = f.read()
        account = re.search(r"kernel: (\d+) received, (\d+) dropped", text)
        self.assertIsNotNone(account, text)
        self.assertGreaterEqual(int(account.group(2)), counters["kernel_drops"])


if __name__ == "__main__":
    unittest.main()
