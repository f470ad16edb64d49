#!/usr/bin/python3
"""Golden tests: a capture in, alerts out, compared with the expectation kept beside it.

Each case is a folder tests/golden/<case>/ with case.json:
  {"capture": "input.pcap" | "$SHARED/pcaps/...", "rules": [...], "intel": [...],
   "description": "..."}
Paths are relative to the case folder, or to the repository with a leading "//", or to the
external corpus (../shared/data) with "$SHARED/". A case over the corpus skips, saying so,
when the corpus is absent (exit code 77, which CTest reports as skipped).

Every alert is validated against docs/schema/alert.schema.json. Alert ids are random, so they
are masked; everything else, time stamps included (they come from the capture), must match.

A case may also pin the agent's other outputs. With "records": true in case.json (or an
expected-records.json beside it) the metadata records (--metadata-log) must equal
expected-records.json, in order; with "intel_log": true (or an expected-intel.log) the lines of
--intel-log must equal expected-intel.log, apart from the #open/#close stamps (wall-clock time).

With --workers N (N > 1) the agent shards flows over N worker threads; the alerts, records and
intel.log lines must then be the same as the expectation (made with one worker) as multisets:
the workers' outputs are merged in another order.
  run_golden.py --agent BUILD/agent/senningen-agent CASE_DIR [--update] [--workers N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("SENNINGEN_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
SKIP = 77


def resolve(case_dir, path):
    if path.startswith("$SHARED/"):
        return os.path.join(SHARED, path[len("$SHARED/"):])
    if path.startswith("//"):
        return os.path.join(REPO, path[2:])
    return os.path.join(case_dir, path)


def normalise(alert):
    alert = json.loads(json.dumps(alert))
    alert["alert"]["id"] = "<masked>"
    return alert


def sort_key(alert):
    return (alert["timestamp"], alert["alert"]["signature"], alert.get("src_ip", ""),
            alert.get("src_port", 0))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("--update", action="store_true", help="rewrite expected.json")
    parser.add_argument("--workers", type=int, default=1,
                        help="inspection threads; >1 compares order-insensitively")
    parser.add_argument("case_dir")
    args = parser.parse_args()

    case_dir = os.path.abspath(args.case_dir)
    with open(os.path.join(case_dir, "case.json")) as f:
        case = json.load(f)
    inputs = [case["capture"]] + case.get("rules", []) + case.get("intel", [])
    for p in inputs:
        full = resolve(case_dir, p)
        if p.startswith("$SHARED/") and not os.path.exists(full):
            print(f"SKIP: external corpus not present: {full}")
            return SKIP
    cmd = [args.agent, "--read", resolve(case_dir, case["capture"]), "--output", "-",
           "--agent-id", "golden", "--quiet"]
    for r in case.get("rules", []):
        cmd += ["--rules", resolve(case_dir, r)]
    for i in case.get("intel", []):
        cmd += ["--intel", resolve(case_dir, i)]
    cmd += case.get("args", [])
    if args.workers > 1 and args.update:
        print("FAIL: --update writes expectations with one worker only")
        return 1
    # Always named: the agent's default (--workers auto) depends on the host's CPUs.
    cmd += ["--workers", str(args.workers)]
    unordered = args.workers > 1

    def canon(items):
        # Order-insensitive comparison: each item as canonical JSON, sorted.
        return sorted(json.dumps(x, sort_keys=True) for x in items)
    records_path = os.path.join(case_dir, "expected-records.json")
    intel_path = os.path.join(case_dir, "expected-intel.log")
    want_records = case.get("records", False) or os.path.exists(records_path)
    want_intel = case.get("intel_log", False) or os.path.exists(intel_path)
    tmp = tempfile.TemporaryDirectory(prefix="senningen-golden-")
    if want_records:
        cmd += ["--metadata-log", os.path.join(tmp.name, "records.jsonl")]
    if want_intel:
        cmd += ["--intel-log", os.path.join(tmp.name, "intel.log")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    expected_exit = case.get("exit_code", 0)
    if proc.returncode != expected_exit:
        print(f"FAIL: agent exited {proc.returncode}, expected {expected_exit}\n"
              f"command: {' '.join(cmd)}\nstderr:\n{proc.stderr}")
        return 1

    with open(os.path.join(REPO, "docs", "schema", "alert.schema.json")) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    alerts = []
    for n, line in enumerate(proc.stdout.splitlines(), 1):
        alert = json.loads(line)
        errors = sorted(validator.iter_errors(alert), key=lambda e: list(e.path))
        if errors:
            print(f"FAIL: alert line {n} violates the schema: "
                  f"{'/'.join(map(str, errors[0].path))}: {errors[0].message}\n{line}")
            return 1
        alerts.append(normalise(alert))
    alerts.sort(key=sort_key)

    records = []
    if want_records:
        with open(os.path.join(tmp.name, "records.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
    intel_lines = []
    if want_intel:
        with open(os.path.join(tmp.name, "intel.log")) as f:
            intel_lines = [line.rstrip("\n") for line in f
                           if not line.startswith(("#open", "#close"))]

    expected_path = os.path.join(case_dir, "expected.json")
    if args.update:
        with open(expected_path, "w") as f:
            json.dump(alerts, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"updated {expected_path} with {len(alerts)} alerts")
        if want_records:
            with open(records_path, "w") as f:
                json.dump(records, f, indent=1, sort_keys=True)
                f.write("\n")
            print(f"updated {records_path} with {len(records)} records")
        if want_intel:
            with open(intel_path, "w") as f:
                f.write("\n".join(intel_lines) + "\n")
            print(f"updated {intel_path} with {len(intel_lines)} lines")
        return 0
    failed = False
    if want_records:
        with open(records_path) as f:
            expected_records = json.load(f)
        same = (canon(records) == canon(expected_records) if unordered
                else records == expected_records)
        if not same:
            failed = True
            print(f"FAIL: {len(records)} records, expected {len(expected_records)}; first differences:")
            shown = 0
            for i in range(max(len(records), len(expected_records))):
                got = records[i] if i < len(records) else None
                want = expected_records[i] if i < len(expected_records) else None
                if got != want and shown < 5:
                    shown += 1
                    print(f"  record {i}:\n    expected: {json.dumps(want, sort_keys=True)}\n"
                          f"    got:      {json.dumps(got, sort_keys=True)}")
        else:
            print(f"ok: {len(records)} records match {records_path}")
    if want_intel:
        with open(intel_path) as f:
            expected_intel = [line.rstrip("\n") for line in f]
        same = (sorted(intel_lines) == sorted(expected_intel) if unordered
                else intel_lines == expected_intel)
        if not same:
            failed = True
            print("FAIL: intel.log differs:")
            for line in sorted(set(expected_intel) - set(intel_lines)):
                print("  missing:    " + line)
            for line in sorted(set(intel_lines) - set(expected_intel)):
                print("  unexpected: " + line)
            if set(intel_lines) == set(expected_intel):
                print("  (same lines, different order or count)")
        else:
            print(f"ok: {len(intel_lines)} intel.log lines match {intel_path}")
    with open(expected_path) as f:
        expected = json.load(f)
    expected.sort(key=sort_key)
    if (canon(alerts) != canon(expected)) if unordered else (alerts != expected):
        print(f"FAIL: {len(alerts)} alerts, expected {len(expected)}; differences:")
        got = {json.dumps(a, sort_keys=True) for a in alerts}
        want = {json.dumps(a, sort_keys=True) for a in expected}
        for a in sorted(want - got):
            print("  missing:    " + a)
        for a in sorted(got - want):
            print("  unexpected: " + a)
        print("(rerun with --update to accept the new output)")
        return 1
    print(f"ok: {len(alerts)} alerts match {expected_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
