#!/usr/bin/python3
"""Runs the agent over a capture of the shared corpus and checks its metadata records against
the Zeek logs beside the capture (expected.conn.log, expected.dns.log, expected.http.log,
expected.files.log, expected.ssl.log, expected.x509.log).

Zeek and the agent cut records differently (Zeek pairs a DNS query with its answer; the agent
writes one record per message), so the comparison is on the facts both must agree on:
  conn   per connection (by 5-tuple): service, conn_state, history, packet and IP byte counts,
         missed bytes, and where Zeek gives them duration and payload sizes (a connection whose
         roles Zeek's heuristic flipped, history ^..., included);
  dns    the set of (client, server port, query name) and, for answered queries, the rcode
         name and the answers;
  http   per connection, in order: method, host, URI, user agent, status code, response
         body length;
  files  per file: seen bytes and the MD5/SHA-1/SHA-256 Zeek computed (when it logged them);
         a ZIP member (Zeek's ZIP analyzer) by name: type, seen and missing bytes, its archive;
  ssl    per connection: the server name, and the chain's SHA-256 fingerprints (cert_chain_fps);
  x509   per certificate: fingerprint (SHA-256), subject, and the DNS SANs.
  compare_zeek_logs.py --agent BUILD/agent/senningen-agent DIR   (DIR holds trace.pcap[ng])
Exits 77 (skipped) when the corpus is absent.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77


def read_zeek_log(path):
    """Rows of a Zeek TSV log as dicts, by its #fields header, or by the first line of a
    btest-diff-cut excerpt (the chosen columns, named without "#fields"). Unset "-", empty
    "(empty)"."""
    fields = None
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#fields\t"):
                fields = line.split("\t")[1:]
                continue
            if line.startswith("#") or not line:
                continue
            if fields is None:
                fields = line.split("\t")  # an excerpt's header line
                continue
            values = line.split("\t")
            rows.append(dict(zip(fields, values)))
    return rows


def unset(v):
    return v in ("-", "(empty)", None)


def zeek_list(v):
    return [] if unset(v) else v.split(",")


def run_agent(agent, capture):
    with tempfile.TemporaryDirectory() as tmp:
        records = os.path.join(tmp, "records.jsonl")
        proc = subprocess.run([agent, "--read", capture, "--metadata-log", records, "--output",
                               os.devnull, "--quiet"], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"FAIL: agent exited {proc.returncode}: {proc.stderr}")
        with open(records) as f:
            return [json.loads(line) for line in f if line.strip()]


def by_type(records, kind):
    return [r for r in records if r["event_type"] == kind]


def compare(name, want, got, problems):
    if want != got:
        problems.append(f"{name}:\n    zeek:  {want}\n    agent: {got}")
        return 0
    return 1


def check_dns(rows, records, problems):
    want_queries = collections.Counter()
    want_answers = {}
    for r in rows:
        if unset(r["query"]):
            continue
        if r["id.resp_p"] == "137":
            continue  # NetBIOS name service: Zeek decodes it as DNS, the agent does not
        # Zeek may flip a connection it saw only the answer of: endpoints as an unordered pair.
        key = (frozenset((r["id.orig_h"], r["id.resp_h"])), r["query"].lower())
        want_queries[key] += 1
        if not unset(r["rcode_name"]):
            want_answers.setdefault(key, set()).add((r["rcode_name"], tuple(zeek_list(r["answers"]))))
    got_queries = collections.Counter()
    got_answers = {}
    for rec in records:
        d = rec["dns"]
        pair = frozenset((rec["src_ip"], rec["dest_ip"]))
        names = [q["rrname"] for q in d["queries"]]
        if not names and d.get("answers"):
            names = [d["answers"][0]["rrname"]]  # an answer without its question (mDNS)
        for name in names:
            key = (pair, name)
            if d["type"] == "query":
                got_queries[key] += 1
            else:
                # Responses: Zeek's answers field lists the answer section's data in order.
                answers = tuple(a.get("rdata", "") for a in d.get("answers", []))
                got_answers.setdefault(key, set()).add((d["rcode_name"], answers))
    # A query Zeek saw only as a response (mDNS announcements) has no query record here.
    matched = 0
    for key in want_queries:
        if key in got_queries or key in got_answers:
            matched += 1
        else:
            problems.append(f"dns: zeek saw query {sorted(key[0])} {key[1]}, the agent did not")
    for key, answers in want_answers.items():
        matched += compare(f"dns answers for {key[1]}", sorted(answers),
                           sorted(got_answers.get(key, set())), problems)
    return matched


def check_http(rows, records, problems):
    want = collections.defaultdict(list)
    for r in rows:
        want[(r["id.orig_h"], r["id.orig_p"])].append(
            (r["method"], r["host"], r["uri"], r["user_agent"], r["status_code"],
             r["response_body_len"]))
    got = collections.defaultdict(list)
    for rec in records:
        h = rec["http"]
        got[(rec["src_ip"], str(rec["src_port"]))].append(
            (h.get("method", "-"), h.get("host", "-"), h.get("uri", "-"), h.get("user_agent", "-"),
             str(h["status_code"]) if "status_code" in h else "-", str(h["response_body_len"])))
    matched = 0
    for key in want:
        matched += compare(f"http {key}", want[key], got.get(key, []), problems)
    return matched


def check_files(rows, records, problems):
    matched = 0
    got = [rec["files"] for rec in records]
    fuids = {}  # Zeek's fuid -> the agent's, for the parents of archive members
    members = []
    for r in rows:
        if r.get("source") == "ZIP":
            members.append(r)  # after their archives are paired
            continue
        candidates = [f for f in got if str(f["seen_bytes"]) == r["seen_bytes"]
                      and f["source"] != "ZIP"]
        if not candidates:
            problems.append(f"files: no file of {r['seen_bytes']} bytes (zeek fuid {r['fuid']})")
            continue
        f = candidates[0]
        fuids[r["fuid"]] = f["fuid"]
        for h in ("md5", "sha1", "sha256"):
            if h in r and not unset(r[h]):
                matched += compare(f"files {r['fuid']} {h}", r[h], f.get(h), problems)
        matched += 1
    # ZIP members (Zeek's ZIP analyzer): by name, with their type, sizes and archive.
    for r in members:
        name = f"files ZIP member {r['filename']}"
        candidates = [f for f in got if f["source"] == "ZIP" and f.get("filename") == r["filename"]]
        if not candidates:
            problems.append(f"{name}: not among the agent's files")
            continue
        f = candidates[0]
        matched += compare(f"{name} mime_type", r["mime_type"], f.get("mime_type", "-"), problems)
        for field in ("seen_bytes", "missing_bytes"):
            matched += compare(f"{name} {field}", r[field], str(f[field]), problems)
        matched += compare(f"{name} parent", fuids.get(r["parent_fuid"], "?"),
                           f.get("parent_fuid"), problems)
        for h in ("md5", "sha1", "sha256"):
            if h in r and not unset(r[h]):
                matched += compare(f"{name} {h}", r[h], f.get(h), problems)
    return matched


def check_ssl(rows, records, problems):
    got = {(rec["src_ip"], str(rec["src_port"])): rec["tls"] for rec in records}
    matched = 0
    for r in rows:
        key = (r["id.orig_h"], r["id.orig_p"])
        t = got.get(key)
        if t is None:
            problems.append(f"ssl: no tls record for {key}")
            continue
        matched += compare(f"ssl {key} server_name", r["server_name"], t.get("sni", "-"), problems)
        if "cert_chain_fps" in r and not unset(r["cert_chain_fps"]):
            matched += compare(f"ssl {key} cert_chain_fps", zeek_list(r["cert_chain_fps"]),
                               [c["sha256"] for c in t.get("certificates", [])], problems)
    return matched


def check_x509(rows, records, problems):
    certs = {}
    for rec in records:
        for c in rec["tls"].get("certificates", []):
            certs[c["sha256"]] = c
    matched = 0
    for r in rows:
        c = certs.get(r["fingerprint"])
        if c is None:
            problems.append(f"x509: no certificate {r['fingerprint']}")
            continue
        matched += compare(f"x509 {r['fingerprint'][:16]} subject", r["certificate.subject"],
                           c["subject"], problems)
        matched += compare(f"x509 {r['fingerprint'][:16]} san.dns", zeek_list(r["san.dns"]),
                           c["san_dns"], problems)
    return matched


# Zeek's service names where the agent's app_proto differs.
ZEEK_SERVICE = {"tls": "ssl"}


def check_conn(rows, records, problems):
    got = {}
    for rec in records:
        key = (rec["proto"].lower(), rec["src_ip"], str(rec["src_port"]), rec["dest_ip"],
               str(rec["dest_port"]))
        got[key] = rec["conn"]
    matched = 0
    for r in rows:
        key = (r["proto"], r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])
        c = got.get(key)
        if c is None:
            problems.append(f"conn: no conn record for {key}")
            continue
        name = f"conn {' '.join(key)}"
        service = c.get("service")
        if r["id.resp_p"] == "137":
            service = "dns"  # NetBIOS name service: Zeek's DNS analyzer takes it, the agent's not
        # Zeek attaches no analyzer to a TCP connection picked up mid-stream (no SYN from its
        # originator); the agent recognises the protocol by content there too.
        if not (r["proto"] == "tcp" and "S" not in r["history"]):
            matched += compare(f"{name} service", r["service"],
                               ZEEK_SERVICE.get(service, service) if service else "-", problems)
        for field in ("conn_state", "history"):
            matched += compare(f"{name} {field}", r[field], c[field], problems)
        for field in ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes", "missed_bytes"):
            matched += compare(f"{name} {field}", r[field], str(c[field]), problems)
        # Zeek leaves duration and sizes unset for a connection of one instant.
        if not unset(r["duration"]):
            matched += compare(f"{name} duration", r["duration"], f"{c['duration']:.6f}", problems)
            for field in ("orig_bytes", "resp_bytes"):
                matched += compare(f"{name} {field}", r[field], str(c[field]), problems)
    return matched


CHECKS = [("conn", "conn", check_conn), ("dns", "dns", check_dns), ("http", "http", check_http),
          ("files", "files", check_files), ("ssl", "tls", check_ssl),
          ("x509", "tls", check_x509)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("dir")
    args = parser.parse_args()
    if not os.path.isdir(args.dir):
        print(f"SKIP: external corpus not present: {args.dir}")
        return SKIP
    capture = next((os.path.join(args.dir, n) for n in ("trace.pcap", "trace.pcapng")
                    if os.path.exists(os.path.join(args.dir, n))), None)
    if capture is None:
        print(f"SKIP: no trace.pcap in {args.dir}")
        return SKIP
    records = run_agent(args.agent, capture)
    problems = []
    total = 0
    logs = 0
    for log, kind, check in CHECKS:
        path = os.path.join(args.dir, f"expected.{log}.log")
        if not os.path.exists(path):
            continue
        rows = read_zeek_log(path)
        logs += 1
        n = check(rows, by_type(records, kind), problems)
        print(f"{log}: {len(rows)} zeek rows, {n} facts agree")
        total += n
    if logs == 0:
        print(f"SKIP: no comparable Zeek logs in {args.dir}")
        return SKIP
    if problems:
        print("FAIL: the agent disagrees with Zeek:")
        for p in problems:
            print("  " + p)
        return 1
    if total == 0:
        print("FAIL: nothing was compared")
        return 1
    print(f"ok: {total} facts agree with Zeek's logs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
