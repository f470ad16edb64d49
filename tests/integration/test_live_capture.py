#!/usr/bin/python3
"""Live capture sees what the offline run sees.

Two network namespaces made by the test, joined by a veth pair: tcpreplay sends a capture
from one side while `senningen-agent --interface` captures on the other. The alerts must be
the same as those of `senningen-agent --read` over the same capture, apart from what depends
on the moment of capture (timestamps, alert ids).

Needs root (namespaces) and tcpreplay; without either the test says so and skips.
"""
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
GOLDEN = os.path.join(REPO, "tests/golden")
TCPREPLAY = shutil.which("tcpreplay")

# (capture, agent arguments): captures the project generates, covering intel, YARA over
# streams and files from traffic, and the ICS policy.
CASES = {
    "demo": (os.path.join(GOLDEN, "demo/input.pcap"),
             ["--rules", os.path.join(REPO, "rules/packs/demo/demo.yar"),
              "--intel", os.path.join(REPO, "rules/packs/demo/demo.intel")]),
    "it-analyzers": (os.path.join(GOLDEN, "it-analyzers/input.pcap"),
                     ["--rules", os.path.join(GOLDEN, "it-analyzers/rules.yar"),
                      "--intel", os.path.join(GOLDEN, "it-analyzers/intel.dat")]),
    "ics-policy": (os.path.join(GOLDEN, "ics-policy/input.pcap"),
                   ["--rules", os.path.join(REPO, "rules/packs/ics")]),
}


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def comparable(alert):
    """The facts of an alert that do not depend on when or how the packets were read."""
    a = alert.get("alert", {})
    intel = alert.get("intel", {})
    f = alert.get("file", {})
    return json.dumps({
        "signature": a.get("signature"), "source": a.get("source"),
        "severity": a.get("severity"), "category": a.get("category"),
        "src_ip": alert.get("src_ip"), "src_port": alert.get("src_port"),
        "dest_ip": alert.get("dest_ip"), "dest_port": alert.get("dest_port"),
        "proto": alert.get("proto"), "app_proto": alert.get("app_proto"),
        "indicator": intel.get("indicator"), "where": intel.get("where"),
        "sha256": f.get("sha256"), "file_size": f.get("size"),
    }, sort_keys=True)


def read_alerts(path):
    with open(path) as f:
        return sorted(comparable(json.loads(line)) for line in f if line.strip())


class VethPair:
    """Namespaces tx and rx, joined by a veth pair with no addresses: a wire, nothing more."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.tx, self.rx = f"sen-lt-tx-{tag}", f"sen-lt-rx-{tag}"
        self.tx_if, self.rx_if = f"slt{tag}t", f"slt{tag}r"
        sh("ip", "netns", "add", self.tx)
        sh("ip", "netns", "add", self.rx)
        sh("ip", "link", "add", self.tx_if, "netns", self.tx, "type", "veth",
           "peer", "name", self.rx_if, "netns", self.rx)
        for ns, ifname in ((self.tx, self.tx_if), (self.rx, self.rx_if)):
            # No IPv6 autoconfiguration chatter on the wire, and room for jumbo frames
            # (the generated captures hold TCP segments of up to 64 KiB less headers).
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w",
               "net.ipv6.conf.all.disable_ipv6=1")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", ifname, "mtu", "65535", "up")

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.tx], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.rx], capture_output=True)


@unittest.skipUnless(os.geteuid() == 0, "SKIPPED: live capture test needs root for namespaces")
@unittest.skipUnless(TCPREPLAY, "SKIPPED: tcpreplay is not installed (scripts/test installs it)")
class LiveCaptureTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="senningen-live-")
        self.wire = VethPair()

    def tearDown(self):
        self.wire.remove()
        shutil.rmtree(self.work, ignore_errors=True)

    def offline(self, name, capture, args):
        out = os.path.join(self.work, name + ".offline.json")
        run = subprocess.run([AGENT, "--read", capture, "--output", out, "--quiet"] + args,
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        return read_alerts(out)

    def live(self, name, capture, args):
        out = os.path.join(self.work, name + ".live.json")
        agent = self.start_live(out, args)
        try:
            self.replay(capture)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, err = agent.communicate(timeout=60)
        self.assertEqual(agent.returncode, 0, err)
        self.assertRegex(err, r"kernel: [1-9][0-9]* received, 0 dropped,",
                         "no frames seen, or the kernel dropped some: the comparison is void")
        return read_alerts(out)

    def start_live(self, out, args):
        """The agent capturing on the receiving side, once its handle is open."""
        agent = subprocess.Popen(
            ["ip", "netns", "exec", self.wire.rx, AGENT, "--interface", self.wire.rx_if,
             "--promisc", "--output", out] + args,
            stderr=subprocess.PIPE, text=True)
        if not self.wait_for_log(agent, "capturing on", 30):
            agent.kill()
            self.fail("agent did not start capturing")
        return agent

    def wait_for_log(self, agent, text, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([agent.stderr], [], [], 1)
            if not ready:
                continue
            line = agent.stderr.readline()
            if not line:
                return False
            if text in line:
                return True
        return False

    def replay(self, capture):
        run = subprocess.run(
            ["ip", "netns", "exec", self.wire.tx, TCPREPLAY, "-q", "-i", self.wire.tx_if,
             "--mbps", "50", capture], capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr + run.stdout)
        time.sleep(1.0)  # the last frames cross the veth and reach the capture buffer

    def test_sighup_reloads_rules_and_intel_without_dropping_the_capture(self):
        """One agent process: a replay before SIGHUP finds nothing (rules and intel that match
        nothing), the files are rewritten, SIGHUP, and a replay after finds what the offline run
        with the new files finds; the kernel dropped nothing."""
        capture, _ = CASES["demo"]
        rules = os.path.join(self.work, "rules.yar")
        intel = os.path.join(self.work, "intel.dat")
        with open(rules, "w") as f:
            f.write("rule matches_nothing { condition: false }\n")
        with open(intel, "w") as f:
            f.write("#fields\tindicator\tindicator_type\tmeta.source\n")
        args = ["--rules", rules, "--intel", intel]
        out = os.path.join(self.work, "reload.live.json")
        agent = self.start_live(out, args)
        try:
            self.replay(capture)
            with open(out) as f:
                before = [line for line in f if line.strip()]
            self.assertEqual(before, [], "alerts before the new rules and intel were loaded")
            shutil.copyfile(os.path.join(REPO, "rules/packs/demo/demo.yar"), rules)
            shutil.copyfile(os.path.join(REPO, "rules/packs/demo/demo.intel"), intel)
            agent.send_signal(signal.SIGHUP)
            # The new files are read on a thread of their own while the capture goes on, and
            # swapped in once ready.
            self.assertTrue(self.wait_for_log(agent, "reload: reading rules, intel and policy", 30),
                            "no reload started after SIGHUP")
            self.assertTrue(self.wait_for_log(agent, "reloaded rules, intel and policy", 30),
                            "no reload logged after SIGHUP")
            self.replay(capture)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, err = agent.communicate(timeout=60)
        self.assertEqual(agent.returncode, 0, err)
        self.assertRegex(err, r"kernel: [1-9][0-9]* received, 0 dropped,")
        # The flows of the first replay may still be open when the second one comes (UDP has
        # no end), so the comparison is by what was found, not alert for alert.
        found = {(a["source"], a["signature"]) for a in map(json.loads, read_alerts(out))}
        offline = {(a["source"], a["signature"])
                   for a in map(json.loads, self.offline("reload", capture, args))}
        self.assertTrue(offline, "the offline run with the new files found nothing")
        self.assertEqual(found, offline)

    def test_stats_line_reports_packets_and_kernel_drops_while_running(self):
        """--stats-interval 1: while the agent runs, a stats line with the packets and the
        kernel's counters, as Zeek's stats.log."""
        capture, args = CASES["demo"]
        out = os.path.join(self.work, "stats.live.json")
        agent = self.start_live(out, args + ["--stats-interval", "1"])
        try:
            self.replay(capture)
            line = ""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "stats: " not in line:
                if select.select([agent.stderr], [], [], 1)[0]:
                    line = agent.stderr.readline()
            self.assertRegex(line, r"stats: [1-9][0-9]* packets, [1-9][0-9]* bytes; kernel: "
                                   r"[1-9][0-9]* received, 0 dropped, 0 dropped by the interface")
        finally:
            agent.send_signal(signal.SIGTERM)
            _, err = agent.communicate(timeout=60)
        self.assertEqual(agent.returncode, 0, err)

    def test_live_alerts_equal_offline_alerts(self):
        for name, (capture, args) in CASES.items():
            with self.subTest(capture=name):
                offline = self.offline(name, capture, args)
                self.assertTrue(offline, f"{name}: the offline run found no alerts")
                live = self.live(name, capture, args)
                self.assertEqual(live, offline, f"{name}: live and offline alerts differ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
