#!/usr/bin/python3
"""HTTPS for the REST API and web UI (issue 6): a real collector with --https-cert/--https-key
made by the test (a CA and a server certificate for 127.0.0.1, with python3-cryptography), a
real TLS client that verifies the chain and the host name, a plain-HTTP client that must fail,
the Secure login cookie, and the start-up refusals (missing, unreadable, non-PEM or mismatched
files) with an error naming the file.

Run by CTest with SENNINGEN_COLLECTOR pointing at the built binary.
"""
import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import ipaddress

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_end_to_end as e2e  # noqa: E402  (Collector, accounts)

WEB_ROOT = os.path.join(e2e.REPO, "collector/web")


def write_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def make_pki(d):
    """A CA, and a certificate for 127.0.0.1 it signed: ca.crt, server.crt, server.key; and an
    unrelated key other.key."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "senningen test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(d, "ca.crt"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(d, "server.crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    write_key(os.path.join(d, "server.key"), key)
    write_key(os.path.join(d, "other.key"), ec.generate_private_key(ec.SECP256R1()))
    os.chmod(os.path.join(d, "server.key"), 0o600)


class Https(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="senningen-https-")
        d = cls.tmp.name
        make_pki(d)
        cls.cert = os.path.join(d, "server.crt")
        cls.key = os.path.join(d, "server.key")
        cls.spec = "sqlite:" + os.path.join(d, "alerts.db")
        cls.collector = e2e.Collector(d, args=["--db", cls.spec, "--https-cert", cls.cert,
                                               "--https-key", cls.key, "--web-root", WEB_ROOT])
        cls.port = int(cls.collector.http.rsplit(":", 1)[1])
        cls.tls = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))  # verifies name

    @classmethod
    def tearDownClass(cls):
        cls.collector.stop()
        cls.tmp.cleanup()

    def https(self, method, path, body=None, headers=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.tls, timeout=10)
        try:
            conn.connect()
            version = conn.sock.version()
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read(), version
        finally:
            conn.close()

    def test_a_verifying_tls_client_gets_health_and_the_ui(self):
        status, _, body, version = self.https("GET", "/api/v1/health")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["status"], "ok")
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        status, headers, body, _ = self.https("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn(b"<html", body.lower())
        # With the collector's token, over TLS, the API answers as over HTTP.
        status, _, body, _ = self.https("GET", "/api/v1/me",
                                        headers={"Authorization": "Bearer " + self.collector.token})
        self.assertEqual((status, json.loads(body)["role"]), (200, "admin"))

    def test_plain_http_to_the_https_port_gets_no_answer(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        with self.assertRaises((http.client.HTTPException, ConnectionError, socket.timeout)):
            conn.request("GET", "/api/v1/health")
            conn.getresponse()
        conn.close()
        # And the server keeps serving TLS clients afterwards.
        self.assertEqual(self.https("GET", "/api/v1/health")[0], 200)

    def client(self, max_version, ciphers="ALL:@SECLEVEL=0"):
        """A client that offers what it is told (old protocols and weak ciphers included), so
        that a refusal comes from the server, and verifies nothing."""
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        c.set_ciphers(ciphers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            c.minimum_version = ssl.TLSVersion.TLSv1
            c.maximum_version = max_version
        return c

    def handshake(self, context):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            with context.wrap_socket(s) as t:
                return t.version()

    def test_old_tls_weak_ciphers_and_unverified_chains_are_refused(self):
        # The same permissive client gets TLS 1.2 when it may, and the server's protocol
        # version alert when it offers at most TLS 1.1.
        self.assertEqual(self.handshake(self.client(ssl.TLSVersion.TLSv1_2)), "TLSv1.2")
        with self.assertRaisesRegex(ssl.SSLError, "PROTOCOL_VERSION"):
            self.handshake(self.client(ssl.TLSVersion.TLSv1_1))
        # TLS 1.2 without forward secrecy or AEAD (RSA key exchange, CBC with SHA-1).
        with self.assertRaisesRegex(ssl.SSLError, "HANDSHAKE_FAILURE|NO_SHARED_CIPHER"):
            self.handshake(self.client(ssl.TLSVersion.TLSv1_2,
                                       "ECDHE-ECDSA-AES128-SHA:AES128-SHA:@SECLEVEL=0"))
        # A client that trusts only its system CAs refuses the server: the chain is checked.
        strict = ssl.create_default_context()
        with self.assertRaises(ssl.SSLCertVerificationError):
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                strict.wrap_socket(s, server_hostname="127.0.0.1")

    def test_login_cookie_is_secure_over_https(self):
        name = "https-" + os.urandom(4).hex()
        pw = os.path.join(self.tmp.name, "pw")
        with open(pw, "w") as f:
            f.write("integration-test-password\n")
        res = subprocess.run([e2e.COLLECTOR, "user", "add", name, "--role", "analyst",
                              "--password-file", pw, "--db", self.spec],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        status, headers, _, _ = self.https(
            "POST", "/api/v1/login",
            body=json.dumps({"name": name, "password": "integration-test-password"}),
            headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        cookie = dict((k.lower(), v) for k, v in headers)["set-cookie"]
        self.assertIn("; Secure", cookie)
        self.assertIn("HttpOnly", cookie)

    def start_refused(self, *args):
        res = subprocess.run([e2e.COLLECTOR, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                              "--db", "sqlite:" + os.path.join(self.tmp.name, "refused.db"),
                              "--insecure", "--web-root", "none", *args],
                             capture_output=True, text=True, timeout=60)
        self.assertNotIn("ready", res.stdout)
        return res.returncode, res.stderr

    def test_bad_files_are_refused_at_start_naming_them(self):
        d = self.tmp.name
        other = os.path.join(d, "other.key")
        code, err = self.start_refused("--https-cert", self.cert, "--https-key", other)
        self.assertEqual(code, 78, err)
        self.assertIn(f"HTTPS key '{other}' does not belong to certificate '{self.cert}'", err)

        missing = os.path.join(d, "missing.key")
        code, err = self.start_refused("--https-cert", self.cert, "--https-key", missing)
        self.assertEqual(code, 64, err)
        self.assertIn(missing, err)

        garbage = os.path.join(d, "garbage.crt")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        code, err = self.start_refused("--https-cert", garbage, "--https-key", self.key)
        self.assertEqual(code, 78, err)
        self.assertIn(f"HTTPS certificate '{garbage}' is not a PEM certificate", err)

        code, err = self.start_refused("--https-cert", self.cert, "--https-key", self.cert)
        self.assertEqual(code, 78, err)
        self.assertIn(f"HTTPS key '{self.cert}' is not an unencrypted PEM private key", err)

        code, err = self.start_refused("--https-cert", self.cert, "--https-key", d)
        self.assertEqual(code, 78, err)
        self.assertIn(f"HTTPS key '{d}' cannot be read", err)

        code, err = self.start_refused("--https-cert", self.cert)
        self.assertEqual(code, 64, err)
        self.assertIn("https_cert needs https_key too", err)

        if os.geteuid() != 0:  # root reads any file
            unreadable = os.path.join(d, "unreadable.key")
            with open(unreadable, "w") as f:
                f.write("x")
            os.chmod(unreadable, 0)
            code, err = self.start_refused("--https-cert", self.cert, "--https-key", unreadable)
            self.assertEqual(code, 78, err)
            self.assertIn(f"HTTPS key '{unreadable}' cannot be read: Permission denied", err)

        # The config file's keys work the same way.
        conf = os.path.join(d, "refused.conf")
        with open(conf, "w") as f:
            f.write(f"[collector]\nhttps_cert = {self.cert}\nhttps_key = {other}\n")
        code, err = self.start_refused("--config", conf)
        self.assertEqual(code, 78, err)
        self.assertIn("does not belong to certificate", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
