#!/usr/bin/python3
"""Who may deliver alerts: a collector with a CA made by `senningen-collector ca init`, and
agents with good and bad credentials, as real processes on loopback.

Refused: no certificate, a self-signed one, one from another CA, an expired one (all four by
the TLS handshake, before any message), and a revoked one (by the collector's revocation
check, which logs the reason). A message claiming another agent's id is refused by the
collector too (tests/unit/collector/ingest_test.cc and transport_security_test.cc send one;
the agent itself refuses to run under an id its certificate does not name, checked here).
"""
import datetime
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_end_to_end as e2e  # noqa: E402  (the account helpers)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = os.environ.get("SENNINGEN_AGENT", os.path.join(REPO, "build/agent/senningen-agent"))
COLLECTOR = os.environ.get("SENNINGEN_COLLECTOR",
                           os.path.join(REPO, "build/collector/senningen-collector"))
CAPTURE = os.path.join(REPO, "tests/golden/demo/input.pcap")
RULES = os.path.join(REPO, "rules/packs/demo/demo.yar")
# Assembled at run time so that this file is not itself a match.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!" + "$H+H*").encode()
FILE_RULE = ('rule eicar_test { strings: $e = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" '
             'condition: $e }\n')


def run(*cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class TransportSecurity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="senningen-sec-")
        cls.dir = cls.tmp.name
        cls.ca = os.path.join(cls.dir, "ca")
        res = run(COLLECTOR, "ca", "init", "--dir", cls.ca)
        assert res.returncode == 0, res.stderr
        cls.db = os.path.join(cls.dir, "alerts.db")
        cls.log_path = os.path.join(cls.dir, "collector.log")
        cls.log = open(cls.log_path, "w")
        cls.token = e2e.add_account("sqlite:" + cls.db, cls.dir, role="analyst")
        cls.proc = subprocess.Popen(
            [COLLECTOR, "--ca-dir", cls.ca, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
             "--db", "sqlite:" + cls.db],
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

    def path(self, name):
        return os.path.join(self.dir, name)

    def stored_for(self, agent):
        con = sqlite3.connect(self.db)
        try:
            return con.execute("SELECT count(*) FROM alerts WHERE agent_id = ?",
                               (agent,)).fetchone()[0]
        finally:
            con.close()

    def collector_log(self):
        with open(self.log_path) as f:
            return f.read()

    def enroll(self, name, ca=None):
        bundle = self.path(name + ".bundle")
        res = run(COLLECTOR, "enroll", "--dir", ca or self.ca, "--agent", name,
                  "--collector", self.broker, "--output", bundle)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(os.stat(bundle).st_mode & 0o777, 0o600)
        identity = self.path(name + ".identity")
        res = run(AGENT, "enroll", bundle, "--dir", identity)
        self.assertEqual(res.returncode, 0, res.stderr)
        for f in ("agent.key", "agent.crt", "ca.crt", "agent.conf"):
            self.assertEqual(os.stat(os.path.join(identity, f)).st_mode & 0o777, 0o600, f)
        self.assertEqual(os.stat(identity).st_mode & 0o777, 0o700)
        return identity

    def agent(self, *args, timeout_s=5):
        # An identity names the collector; file-by-file credentials need it said.
        where = () if "--identity" in args else ("--collector", self.broker)
        return run(AGENT, "--read", CAPTURE, "--rules", RULES, "--collector-timeout",
                   str(timeout_s), *where, *args, timeout=120)

    def assert_refused(self, res, agent):
        self.assertEqual(res.returncode, 69, res.stderr)
        self.assertIn("acknowledged 0 of", res.stderr)
        self.assertEqual(self.stored_for(agent), 0)

    def write_cert(self, name, cert, key):
        crt, k = self.path(name + ".crt"), self.path(name + ".key")
        with open(crt, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(k, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return crt, k

    def make_cert(self, cn, issuer_name, signing_key, not_before, not_after, key=None):
        key = key or ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(issuer_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before)
                .not_valid_after(not_after)
                .sign(signing_key, hashes.SHA256()))
        return cert, key

    # ---- accepted ----

    def test_an_enrolled_agent_delivers_and_is_listed(self):
        identity = self.enroll("good-agent")
        res = self.agent("--identity", identity, "--heartbeat", "1", timeout_s=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("collector acknowledged all", res.stderr)
        self.assertEqual(self.stored_for("good-agent"), 2)  # the demo rules' two matches
        status, _, agent = e2e.api_get(self.http + "/api/v1/agents/good-agent", self.token)
        self.assertEqual(status, 200, agent)
        self.assertEqual(agent["state"], "stopped")
        self.assertEqual(agent["counters"]["alerts"], 2)
        self.assertEqual([e["event"] for e in agent["events"]], ["stopped", "online"])

    # ---- refused by the TLS handshake ----

    def test_no_certificate_is_refused(self):
        res = self.agent("--insecure", "--agent-id", "anonymous",
                         "--queue", self.path("anon.db"))
        self.assert_refused(res, "anonymous")
        self.assertIn("collector unreachable", res.stderr)

    def test_a_self_signed_certificate_is_refused(self):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue")])
        cert, _ = self.make_cert("rogue", name, key, now, now + datetime.timedelta(days=2), key)
        crt, k = self.write_cert("rogue", cert, key)
        res = self.agent("--tls-cert", crt, "--tls-key", k, "--tls-ca",
                         os.path.join(self.ca, "ca.crt"), "--agent-id", "rogue",
                         "--queue", self.path("rogue.db"))
        self.assert_refused(res, "rogue")

    def test_a_certificate_from_another_ca_is_refused(self):
        other = self.path("other-ca")
        self.assertEqual(run(COLLECTOR, "ca", "init", "--dir", other).returncode, 0)
        identity = self.enroll("foreign-agent", ca=other)
        res = self.agent("--identity", identity)
        self.assert_refused(res, "foreign-agent")

    def test_an_expired_certificate_is_refused(self):
        with open(os.path.join(self.ca, "ca.key"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), None)
        with open(os.path.join(self.ca, "ca.crt"), "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert, key = self.make_cert("old-agent", ca_cert.subject, ca_key,
                                   now - datetime.timedelta(days=30),
                                   now - datetime.timedelta(days=1))
        crt, k = self.write_cert("old-agent", cert, key)
        res = self.agent("--tls-cert", crt, "--tls-key", k, "--tls-ca",
                         os.path.join(self.ca, "ca.crt"), "--agent-id", "old-agent",
                         "--queue", self.path("old.db"))
        self.assert_refused(res, "old-agent")

    # ---- refused by the collector ----

    def test_a_revoked_certificate_is_refused_and_the_reason_logged(self):
        identity = self.enroll("revoked-agent")
        res = self.agent("--identity", identity, timeout_s=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        res = run(COLLECTOR, "revoke", "--dir", self.ca, "--agent", "revoked-agent")
        self.assertEqual(res.returncode, 0, res.stderr)
        before = self.stored_for("revoked-agent")
        res = self.agent("--identity", identity, "--output", self.path("revoked.jsonl"))
        self.assertEqual(res.returncode, 69, res.stderr)
        self.assertEqual(self.stored_for("revoked-agent"), before)
        log = self.collector_log()
        self.assertIn("claiming agent 'revoked-agent'", log)
        self.assertIn("certificate revoked", log)

    def test_the_agent_will_not_claim_an_id_its_certificate_does_not_name(self):
        identity = self.enroll("honest-agent")
        res = self.agent("--identity", identity, "--agent-id", "someone-else")
        self.assertEqual(res.returncode, 64, res.stderr)
        self.assertIn("is not the enrolled agent 'honest-agent'", res.stderr)
        res = self.agent("--tls-cert", os.path.join(identity, "agent.crt"), "--tls-key",
                         os.path.join(identity, "agent.key"), "--tls-ca",
                         os.path.join(identity, "ca.crt"), "--agent-id", "someone-else",
                         "--queue", self.path("claim.db"))
        self.assertEqual(res.returncode, 78, res.stderr)
        self.assertIn("names agent 'honest-agent', not 'someone-else'", res.stderr)
        self.assertEqual(self.stored_for("someone-else"), 0)

    # ---- file inspection: `scan` and `watch` sign with the identity too ----

    def file_tree(self, name):
        tree = self.path(name)
        os.makedirs(tree)
        with open(os.path.join(tree, "drop.bin"), "wb") as f:
            f.write(b"head " + EICAR)
        with open(os.path.join(tree, "clean.txt"), "w") as f:
            f.write("nothing to see")
        rules = self.path(name + ".yar")
        with open(rules, "w") as f:
            f.write(FILE_RULE)
        return tree, rules

    def stored_rows(self, agent):
        con = sqlite3.connect(self.db)
        try:
            return con.execute("SELECT kind, rule FROM alerts WHERE agent_id = ?",
                               (agent,)).fetchall()
        finally:
            con.close()

    def test_scan_delivers_signed_file_alerts_with_the_identity(self):
        identity = self.enroll("scan-agent")
        tree, rules = self.file_tree("scan-tree")
        res = run(AGENT, "scan", tree, "--rules", rules, "--identity", identity,
                  "--collector-timeout", "30", timeout=120)
        # 1: a file matched, and (else it would be 2) the collector acknowledged every alert.
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(self.stored_rows("scan-agent"), [("file", "eicar_test")])
        self.assertNotIn("claiming agent 'scan-agent'", self.collector_log())

    def test_scan_on_an_unauthenticated_link_is_refused(self):
        tree, rules = self.file_tree("anon-scan-tree")
        res = run(AGENT, "scan", tree, "--rules", rules, "--collector", self.broker,
                  "--quiet")
        self.assertEqual(res.returncode, 2)
        self.assertIn("--collector needs an identity", res.stderr)
        res = run(AGENT, "scan", tree, "--rules", rules, "--collector", self.broker,
                  "--insecure", "--agent-id", "anon-scan", "--collector-timeout", "5",
                  timeout=120)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("acknowledged 0 of 1 alerts", res.stderr)
        self.assertEqual(self.stored_for("anon-scan"), 0)

    def test_watch_delivers_with_the_identity_its_config_names(self):
        identity = self.enroll("watch-agent")
        tree, rules = self.file_tree("watch-tree")
        conf = self.path("watch.conf")
        with open(conf, "w") as f:
            f.write(f"watch = {tree}\nrules = {rules}\nidentity = {identity}\n"
                    f"queue = {self.path('watch-queue.db')}\nfull_scan_interval = 0\n")
        res = run(AGENT, "watch", "--config", conf, "--run-for", "3", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.stored_rows("watch-agent"), [("file", "eicar_test")])

    # ---- the command line ----

    def test_the_collector_wants_certificates_or_an_explicit_insecure(self):
        res = run(COLLECTOR, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                  "--db", "sqlite:" + self.path("x.db"))
        self.assertEqual(res.returncode, 64)
        self.assertIn("--insecure explicitly", res.stderr)

    def test_a_bad_bundle_is_refused_naming_it(self):
        bad = self.path("bad.bundle")
        with open(bad, "w") as f:
            f.write("senningen-bundle: 1\nagent: x\ncollector: 127.0.0.1:1\n")
        res = run(AGENT, "enroll", bad, "--dir", self.path("bad-identity"))
        self.assertEqual(res.returncode, 65)
        self.assertIn(bad, res.stderr)
        self.assertIn("expected 3 PEM blocks", res.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
