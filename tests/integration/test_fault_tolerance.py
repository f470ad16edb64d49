#!/usr/bin/python3
"""The issue's fault test: an enrolled agent delivers 100,000 alerts over mutual TLS while
the collector is killed with SIGKILL and restarted twice, the agent is killed with SIGKILL and
restarted once, and the link is cut for 10 s. At the end the store holds exactly the 100,000
alerts, none twice, and the agent's queue is empty.

The agent runs in a network namespace joined to the host by a veth pair that the test makes
(and removes); cutting the link is setting the host's end down. Needs root (CTest runs it as
the user the suite runs as; without root it is skipped, saying so).
"""
import os
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alert_capture  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.environ.get("SENNINGEN_AGENT", os.path.join(REPO, "build/agent/senningen-agent"))
COLLECTOR = os.environ.get("SENNINGEN_COLLECTOR",
                           os.path.join(REPO, "build/collector/senningen-collector"))

FLOWS, RULES = 1000, 100  # 100,000 alerts
TOTAL = FLOWS * RULES
DEADLINE_S = 330  # 178 s measured with the test given 8 % of one core


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class Link:
    """A namespace for the agent and a veth pair to the host, on addresses of their own."""

    def __init__(self):
        n = os.getpid() % 250 + 1
        self.ns = f"sen-ft-{os.getpid()}"
        self.host_if, self.ns_if = f"sft{os.getpid() % 100000}h", f"sft{os.getpid() % 100000}n"
        self.host_ip, self.ns_ip = f"10.213.{n}.1", f"10.213.{n}.2"
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        sh("ip", "link", "set", self.ns_if, "netns", self.ns)
        sh("ip", "addr", "add", self.host_ip + "/30", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "addr", "add", self.ns_ip + "/30", "dev", self.ns_if)
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.ns_if, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")

    def cut(self):
        sh("ip", "link", "set", self.host_if, "down")

    def restore(self):
        sh("ip", "link", "set", self.host_if, "up")

    def remove(self):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


def free_port(host):
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@unittest.skipUnless(os.geteuid() == 0, "needs root to make a network namespace and a veth pair")
class FaultTolerance(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="senningen-fault-")
        self.dir = self.tmp.name
        self.link = Link()
        self.procs = []
        self.port = free_port(self.link.host_ip)
        self.db = self.path("alerts.db")
        ca = self.path("ca")
        self.run_ok(COLLECTOR, "ca", "init", "--dir", ca)
        self.run_ok(COLLECTOR, "enroll", "--dir", ca, "--agent", "fault-agent",
                    "--collector", f"{self.link.host_ip}:{self.port}",
                    "--output", self.path("agent.bundle"))
        self.identity = self.path("identity")
        self.run_ok(AGENT, "enroll", self.path("agent.bundle"), "--dir", self.identity)
        alert_capture.write_capture(self.path("alerts.pcap"), FLOWS)
        alert_capture.write_rules(self.path("rules.yar"), RULES)
        self.collector_log = open(self.path("collector.log"), "a")
        self.agent_log = open(self.path("agent.log"), "a")

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()
        self.link.remove()
        self.collector_log.close()
        self.agent_log.close()
        if os.environ.get("SENNINGEN_KEEP_TMP"):
            print("kept", self.dir, file=sys.stderr)
            self.tmp._finalizer.detach()
        else:
            self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def run_ok(self, *cmd):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)

    def start_collector(self):
        proc = subprocess.Popen(
            [COLLECTOR, "--ca-dir", self.path("ca"), "--listen", f"{self.link.host_ip}:{self.port}",
             "--http", "127.0.0.1:0", "--db", "sqlite:" + self.db],
            stdout=subprocess.PIPE, stderr=self.collector_log, text=True)
        self.procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        self.assertTrue(line.startswith("ready "), f"collector did not start: {line!r}")
        return proc

    def start_agent(self):
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.link.ns, AGENT, "--identity", self.identity,
             "--read", self.path("alerts.pcap"), "--rules", self.path("rules.yar"),
             "--heartbeat", "2", "--collector-timeout", str(DEADLINE_S)],
            stdout=subprocess.DEVNULL, stderr=self.agent_log)
        self.procs.append(proc)
        return proc

    def stored(self):
        if not os.path.exists(self.db):
            return 0
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return con.execute("SELECT count(*) FROM alerts").fetchone()[0]
        except sqlite3.OperationalError:
            return 0  # not yet migrated
        finally:
            con.close()

    def wait_stored(self, at_least, until):
        while time.monotonic() < until:
            n = self.stored()
            if n >= at_least:
                return n
            time.sleep(0.05)
        self.fail(f"only {self.stored()} of {at_least} alerts stored in time; "
                  f"logs in {self.dir}")

    def test_nothing_lost_nothing_twice_through_crashes_and_a_cut(self):
        try:
            self.crash_and_cut()
        except BaseException:
            # CI keeps only the output: the faults so far and the logs' ends say where
            # delivery stood.
            print("faults at stored counts:", getattr(self, "faults", []), file=sys.stderr)
            for name in ("agent.log", "collector.log"):
                with open(self.path(name), errors="replace") as f:
                    tail = f.readlines()[-25:]
                print(f"--- last lines of {name}:\n" + "".join("  " + line for line in tail),
                      file=sys.stderr)
            raise

    def crash_and_cut(self):
        until = time.monotonic() + DEADLINE_S
        faults = self.faults = []
        collector = self.start_collector()
        agent = self.start_agent()

        faults.append(("agent SIGKILL", self.wait_stored(10_000, until)))
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        agent = self.start_agent()

        faults.append(("collector SIGKILL 1", self.wait_stored(30_000, until)))
        collector.send_signal(signal.SIGKILL)
        collector.wait()
        time.sleep(1)
        collector = self.start_collector()

        faults.append(("link cut 10 s", self.wait_stored(50_000, until)))
        self.link.cut()
        time.sleep(10)
        self.link.restore()

        faults.append(("collector SIGKILL 2", self.wait_stored(70_000, until)))
        collector.send_signal(signal.SIGKILL)
        collector.wait()
        time.sleep(1)
        collector = self.start_collector()

        code = agent.wait(timeout=max(1, until - time.monotonic()))
        self.assertEqual(code, 0, f"the agent did not get every alert acknowledged; logs in {self.dir}")
        for what, count in faults:
            self.assertLess(count, TOTAL, f"{what} happened after everything was delivered")

        con = sqlite3.connect(self.db)
        total, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM alerts").fetchone()
        per_rule = con.execute("SELECT count(DISTINCT rule) FROM alerts").fetchone()[0]
        agents = con.execute("SELECT DISTINCT agent_id FROM alerts").fetchall()
        con.close()
        self.assertEqual((total, distinct), (TOTAL, TOTAL))
        self.assertEqual(per_rule, RULES)
        self.assertEqual(agents, [("fault-agent",)])

        queue = sqlite3.connect(os.path.join(self.identity, "queue.db"))
        self.assertEqual(queue.execute("SELECT count(*) FROM entries").fetchone()[0], 0)
        queue.close()

        collector.send_signal(signal.SIGTERM)
        self.assertEqual(collector.wait(timeout=20), 0)
        with open(self.path("agent.log")) as f:
            log = f.read()
        self.assertIn("lost collector", log)
        self.assertIn("resuming", log)  # the restarted agent skipped what it had queued
        print("faults at stored counts:", faults, file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
