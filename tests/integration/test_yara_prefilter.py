#!/usr/bin/python3
"""The YARA literal prefilter changes nothing an analyst sees: the real senningen-agent over real
captures with a real rule set gives the same alerts and metadata records with the prefilter
(the default) and with --no-yara-prefilter, while the prefilter did skip scans.

Run by CTest with SENNINGEN_AGENT pointing at the built binary; SENNINGEN_SHARED_DATA names the
shared data folder. The rule set (yara-rules, 1,042 rules, most of them prefiltered and some
always scanned) and the captures come from there: without it the test is skipped, saying so.
"""
import glob
import json
import os
import re
import subprocess
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.environ.get("SENNINGEN_AGENT", os.path.join(REPO, "build/agent/senningen-agent"))
SHARED = os.environ.get("SENNINGEN_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
RULES = os.path.join(SHARED, "yara", "yara-rules")


def inspect(capture, tmp, extra):
    alerts = os.path.join(tmp, "alerts.jsonl")
    records = os.path.join(tmp, "records.jsonl")
    done = subprocess.run(
        [AGENT, "--read", capture, "--agent-id", "prefilter-test", "--rules", RULES,
         "--output", alerts, "--metadata-log", records] + extra,
        capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"{capture}: exit {done.returncode}: {done.stderr}")
    with open(alerts) as f:
        found = [json.loads(line) for line in f if line.strip()]
    for a in found:
        a["alert"].pop("id")  # a fresh UUID per alert
    with open(records) as f:
        meta = f.read()
    skipped = re.search(r"YARA scans (\d+) \((\d+) skipped by the prefilter\)", done.stderr)
    if not skipped:
        raise AssertionError(f"{capture}: no YARA scan counts in the log: {done.stderr}")
    return found, meta, int(skipped.group(1)), int(skipped.group(2)), done.stderr


class SameResultsWithAndWithoutThePrefilter(unittest.TestCase):
    def test_real_captures_and_rules(self):
        captures = sorted(glob.glob(os.path.join(SHARED, "pcaps", "general", "*", "trace.pcap*")))
        if not os.path.isdir(RULES) or not captures:
            self.skipTest(f"shared data not present: {RULES} and pcaps/general/*/trace.pcap*")
        total_alerts = total_scans = total_skipped = 0
        with tempfile.TemporaryDirectory(prefix="senningen-prefilter-") as tmp:
            for capture in captures:
                with self.subTest(capture=capture):
                    on, on_meta, scans, skipped, log = inspect(capture, tmp, [])
                    self.assertIn("YARA literal prefilter on:", log)
                    off, off_meta, off_scans, off_skipped, off_log = inspect(
                        capture, tmp, ["--no-yara-prefilter"])
                    self.assertIn("YARA literal prefilter off: turned off", off_log)
                    self.assertEqual(off_skipped, 0)
                    self.assertEqual(scans, off_scans)
                    self.assertEqual(on, off)
                    self.assertEqual(on_meta, off_meta)
                    total_alerts += len(on)
                    total_scans += scans
                    total_skipped += skipped
        print(f"{len(captures)} captures: {total_alerts} alerts either way; "
              f"{total_skipped} of {total_scans} YARA scans skipped the prefiltered rules")
        # Not vacuous: alerts to compare, and scans the prefilter did take over.
        self.assertGreater(total_alerts, 0)
        self.assertGreater(total_skipped, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
