#!/usr/bin/python3
"""Hostile input against the REST API (issue 6): a real collector on a free loopback port with
a SQLite store, accounts of every role made with the CLI, alerts from a real agent run over the
demo capture and some triage; then hundreds of generated malformed and hostile requests over
every route and method the OpenAPI document lists (plus paths that do not exist): bad and
deeply nested JSON, wrong types, oversized bodies and headers, SQL metacharacters, NUL and
invalid UTF-8 in every query parameter and path id, ../ and %2e%2e traversal on static and API
paths, missing, forged and malformed tokens and cookies, roles that lack the permission, and
methods the route does not have.

Each answer must be a 4xx; one that reached the API's handlers must be an RFC 7807 problem
document that leaks nothing (no exception text, SQL or source names). The one exception is an
exact-match text filter (agent, assignee, q) given a hostile value: that is a valid query for a
name nobody has, so it must answer 200 with no alerts (an injected OR 1=1 would return them
all). Afterwards the process must be alive and answering, and the store unchanged: alerts,
triage state, comments, the audit log, accounts, tokens and sessions compared before and after,
through the API with an admin token and directly in the SQLite file.

Run by CTest with SENNINGEN_AGENT and SENNINGEN_COLLECTOR pointing at the built binaries.
"""
import json
import os
import random
import socket
import sqlite3
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_end_to_end as e2e  # noqa: E402  (Collector, accounts, the agent runner)

WEB_ROOT = os.path.join(e2e.REPO, "collector/web")
PASSWORD = "integration-test-password"

# Strings that must never reach a client unless the client sent them itself: they would mean an
# exception's text, SQL or a source location leaked into an answer.
LEAK_MARKERS = ["Exception", "exception", "SQLITE", "sqlite3", "SQLite", "Poco::", "std::",
                "no such table", "syntax error", ".cc:", "Traceback", "libpq", "postgres",
                "root:x:0:0"]

HOSTILE_VALUES = [
    "' OR '1'='1", "1' OR 1=1 --", "1; DROP TABLE alerts; --", "\" OR \"\"=\"",
    "1 UNION SELECT name, password_hash FROM users --", "%", "_", "*", "\\", "'", "\"",
    "\x00", "a\x00b", "\xff\xfe", "\udcff", "\u202e\u0000", "é" * 40, "😀",
    "../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f", "$(id)", "`id`",
    "{\"$gt\": \"\"}", "<script>alert(1)</script>", "-1", "0", "99999999999999999999",
    "1e3", "0x10", " 1", "1 ", "1,,2", ",", "1,2,3,4,5", "NaN", "null", "true", "[]",
    "A" * 300, "B" * 8000, "2026-13-45T99:99:99Z", "1970-01-01T00:00:00Z'--",
]


def raw_request(port, method, target, headers=None, body=b"", timeout=15, raw=None):
    """Sends one request over a fresh connection, byte for byte as given (no client-side
    checks or encoding), and reads the answer until the server closes it. Returns (status,
    headers dict with lower-case names, body bytes); status 0 when the connection ended without
    an HTTP status line."""
    if raw is None:
        if isinstance(target, str):
            target = target.encode("utf-8", "surrogateescape")
        if isinstance(method, str):
            method = method.encode("latin-1")
        lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        for name, value in (headers or {}).items():
            if isinstance(value, str):
                value = value.encode("utf-8", "surrogateescape")
            lines.append(name.encode() + b": " + value)
        if body and not any(k.lower() in ("content-length", "transfer-encoding")
                            for k in (headers or {})):
            lines.append(b"Content-Length: " + str(len(body)).encode())
        raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/"):
        return 0, {}, data
    status = int(lines[0].split()[1])
    out = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        out[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    length = out.get("content-length")
    return status, out, rest[:int(length)] if length is not None else rest


def quote(value):
    """Percent-encodes every byte of VALUE (surrogate-escaped bytes as themselves)."""
    return urllib.parse.quote(value.encode("utf-8", "surrogateescape"), safe="")


class HostileApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="senningen-hostile-")
        cls.db = os.path.join(cls.tmp.name, "alerts.db")
        spec = "sqlite:" + cls.db
        cls.tokens = {role: e2e.add_account(spec, cls.tmp.name, role)
                      for role in ("admin", "analyst", "rule-author")}
        cls.collector = e2e.Collector(cls.tmp.name, token=cls.tokens["admin"],
                                      args=["--db", spec, "--web-root", WEB_ROOT])
        cls.port = int(cls.collector.http.rsplit(":", 1)[1])
        res = e2e.run_agent("--read", os.path.join(e2e.DEMO, "input.pcap"), "--rules", e2e.RULES,
                            "--intel", e2e.INTEL, "--collector", cls.collector.broker,
                            "--agent-id", "hostile-agent", "--quiet")
        if res.returncode != 0:
            raise RuntimeError("agent failed: " + res.stderr)
        status, _, body = cls.collector.get("/api/v1/alerts?limit=1000")
        assert status == 200 and body["count"] > 0, body
        cls.alert_ids = [a["alert"]["id"] for a in body["alerts"]]
        # Some triage state, so that an update that slipped through would show.
        target = cls.alert_ids[0]
        cls.api("PATCH", "/api/v1/alerts/" + target, "admin",
                {"status": "in_progress", "assignee": cls.account_name("analyst")}, expect=200)
        cls.api("POST", f"/api/v1/alerts/{target}/comments", "analyst",
                {"text": "looked at it"}, expect=201)
        # A session cookie of the analyst, for the cookie cases (a login is a store change,
        # made before the first snapshot).
        status, headers, _ = raw_request(
            cls.port, "POST", "/api/v1/login", {"Content-Type": "application/json"},
            json.dumps({"name": cls.account_name("analyst"), "password": PASSWORD}).encode())
        assert status == 200, status
        cls.analyst_cookie = headers["set-cookie"].split(";")[0]
        status, _, doc = raw_request(cls.port, "GET", "/api/v1/openapi.json")
        assert status == 200
        cls.routes = []  # (method, path template) of every operation the server documents
        for path, item in json.loads(doc)["paths"].items():
            for method in item:
                if method in ("get", "post", "patch", "put", "delete"):
                    cls.routes.append((method.upper(), path))
        cls.before = cls.snapshot()
        cls.rng = random.Random(6)

    @classmethod
    def tearDownClass(cls):
        cls.collector.stop()
        cls.tmp.cleanup()

    @classmethod
    def account_name(cls, role):
        status, _, me = e2e.api_get(cls.collector.http + "/api/v1/me", cls.tokens[role])
        assert status == 200
        return me["user"]

    @classmethod
    def api(cls, method, path, role, body, expect):
        status, _, answer = raw_request(
            cls.port, method, path, {"Authorization": "Bearer " + cls.tokens[role],
                                     "Content-Type": "application/json"},
            json.dumps(body).encode())
        assert status == expect, (method, path, status, answer)

    @classmethod
    def snapshot(cls):
        """What must not change: through the API (admin token) and in the SQLite file, without
        the columns that only record use (tokens' and sessions' last use)."""
        get = cls.collector.get
        state = {}
        _, _, health = get("/api/v1/health")
        state["health.alerts"] = health["alerts"]
        _, _, listed = get("/api/v1/alerts?limit=1000")
        state["alerts"] = listed["alerts"]
        state["triage"] = listed["triage"]
        state["details"] = {i: get("/api/v1/alerts/" + i)[2] for i in cls.alert_ids}
        state["users"] = get("/api/v1/users")[2]
        state["agents"] = sorted(a["id"] for a in get("/api/v1/agents")[2]["agents"])
        con = sqlite3.connect(f"file:{cls.db}?mode=ro", uri=True)
        try:
            for table, columns in [
                    ("alerts", "id, agent_id, ts_ns, severity, rule, body"),
                    ("alert_triage", "*"), ("alert_comments", "*"), ("audit_log", "*"),
                    ("users", "*"), ("api_tokens", "digest, user_name, label, created_ns"),
                    ("sessions", "digest, user_name, created_ns, expires_ns")]:
                state["sql." + table] = sorted(
                    con.execute(f"SELECT {columns} FROM {table}").fetchall(), key=repr)
        finally:
            con.close()
        return state

    # --- what every answer must be ------------------------------------------------------

    def check(self, what, answer, problem=True, allowed=range(400, 500)):
        status, headers, body = answer
        self.assertIn(status, allowed, f"{what}: status {status}, body {body[:300]!r}")
        text = body.decode("utf-8", "replace")
        for marker in LEAK_MARKERS:
            if marker in what:
                continue  # the request carried it; an echo in the detail is not a leak
            self.assertNotIn(marker, text, f"{what}: the answer leaks {marker!r}: {text[:300]}")
        if problem and status >= 400:
            self.assertTrue(headers.get("content-type", "").startswith("application/problem+json"),
                            f"{what}: {status} without a problem document: {headers}")
            doc = json.loads(body)
            self.assertEqual(doc["status"], status, what)
            self.assertIsInstance(doc["detail"], str, what)
        self.count += 1

    def send(self, method, target, role=None, headers=None, body=b"", **kw):
        h = dict(headers or {})
        if role is not None:
            h["Authorization"] = "Bearer " + self.tokens[role]
        return raw_request(self.port, method, target, h, body, **kw)

    def concrete(self, template, value="{id}"):
        return template.replace("{id}", value)

    # --- the cases -----------------------------------------------------------------------

    def test_hostile_requests(self):
        self.count = 0
        self.auth_attacks()
        self.wrong_roles()
        self.bad_methods()
        self.query_parameters()
        self.path_ids()
        self.bad_bodies()
        self.oversized()
        self.traversal()
        print(f"\n{self.count} hostile requests, each refused as it should be", file=sys.stderr)
        self.assertGreater(self.count, 500)

        # The process is alive and answering, and nothing changed.
        self.assertIsNone(self.collector.proc.poll(), "the collector died")
        status, _, health = self.collector.get("/api/v1/health")
        self.assertEqual((status, health["status"]), (200, "ok"))
        after = self.snapshot()
        for key in self.before:
            self.assertEqual(after[key], self.before[key], f"the store changed: {key}")

    def auth_attacks(self):
        forged = [
            {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
            {"Authorization": "Bearer snt_" + "0" * 64},
            {"Authorization": "Bearer snt_" + self.rng.randbytes(32).hex()},
            {"Authorization": "Bearer " + self.tokens["admin"] + "x"},
            {"Authorization": "Bearer " + self.tokens["admin"][:-1]},
            {"Authorization": "bearer " + self.tokens["admin"]},
            {"Authorization": "Basic YWRtaW46YWRtaW4="},
            {"Authorization": "Bearer snt_' OR '1'='1"},
            {"Authorization": "Bearer snt_" + "A" * 6000},
            {"Authorization": "Bearer snt_\xff\xfe"},
            {"Cookie": "senningen_session=sns_" + "0" * 64},
            {"Cookie": "senningen_session=sns_' OR 1=1 --"},
            {"Cookie": "senningen_session=" + self.tokens["admin"]},
            {"Cookie": "senningen_session=\"sns_x\"; senningen_session=sns_y"},
            {"Cookie": "senningen_session=sns_" + "9" * 7000},
            {"Cookie": "senningen_session"},
            {"Cookie": ";;;=;"},
            # A valid cookie does not rescue a forged token: the token is looked at first.
            {"Authorization": "Bearer snt_forged", "Cookie": self.analyst_cookie},
        ]
        # Logout with a forged session cookie ends nothing (the snapshot keeps the analyst's
        # real session) and says so as for no cookie at all.
        for cookie in ["senningen_session=sns_" + "0" * 64, "senningen_session=sns_' OR 1=1 --",
                       "senningen_session=sns_%", "senningen_session=" + self.tokens["admin"]]:
            answer = self.send("POST", "/api/v1/logout", headers={"Cookie": cookie})
            self.assertEqual(answer[0], 200, cookie)
            self.count += 1
        protected = [(m, p) for m, p in self.routes
                     if p not in ("/api/v1/health", "/api/v1/openapi.json", "/api/v1/login",
                                  "/api/v1/logout")]
        protected += [("GET", "/api/v1/nothing-here"), ("DELETE", "/api/v1/alerts"),
                      ("GET", "/api/v2/alerts"), ("GET", "/api/v1/users/../users")]
        self.assertTrue(protected)
        for method, path in protected:
            target = self.concrete(path, self.alert_ids[0])
            body = b'{"status": "resolved"}' if method in ("POST", "PATCH") else b""
            for headers in forged:
                h = dict(headers, **({"Content-Type": "application/json"} if body else {}))
                answer = self.send(method, target, headers=h, body=body)
                self.check(f"{method} {target} with {sorted(headers)}", answer,
                           allowed=(401,))

    def wrong_roles(self):
        target = self.alert_ids[1]
        triage_bodies = {
            ("PATCH", "/api/v1/alerts/{id}"): {"status": "resolved"},
            ("POST", "/api/v1/alerts/{id}/comments"): {"text": "should not be stored"},
            ("POST", "/api/v1/alerts/bulk"): {"ids": self.alert_ids[:3], "status": "escalated"},
        }
        for (method, path), body in triage_bodies.items():
            answer = self.send(method, self.concrete(path, target), "rule-author",
                               {"Content-Type": "application/json"}, json.dumps(body).encode())
            self.check(f"rule-author {method} {path}", answer, allowed=(403,))
        for role in ("analyst", "rule-author"):
            answer = self.send("GET", "/api/v1/users", role)
            self.check(f"{role} GET /api/v1/users", answer, allowed=(403,))
        # Every route of the document that an admin-only permission guards, by the others.
        for method, path in self.routes:
            if "users" in path and method == "GET":
                for role in ("analyst", "rule-author"):
                    self.check(f"{role} {method} {path}",
                               self.send(method, self.concrete(path, "x"), role), allowed=(403,))

    def bad_methods(self):
        methods = ["PUT", "DELETE", "PATCH", "POST", "GET", "OPTIONS", "TRACE", "CONNECT",
                   "PROPFIND", "FOO", "get", "G\x00T"]
        by_path = {}
        for method, path in self.routes:
            by_path.setdefault(path, set()).add(method)
        for path, allowed in by_path.items():
            target = self.concrete(path, self.alert_ids[2])
            for method in methods:
                if method in allowed:
                    continue
                answer = self.send(method, target, "admin", {"Content-Type": "application/json"},
                                   b'{"status": "resolved"}')
                self.check(f"{method!r} {path}", answer, allowed=(405,))
                self.assertIn("allow", answer[1], f"{method} {path}: 405 without Allow")

    def query_parameters(self):
        # The list's parameters and the value kinds each accepts; every route with a GET also
        # gets each hostile value under each of these names and under names it does not know.
        names = ["since", "until", "severity", "agent", "status", "assignee", "limit", "cursor",
                 "sort", "q", "by", "id", "' OR 1=1 --", "limit[]", "\x00"]
        exact_text = {"agent", "assignee", "q"}  # a hostile value is a name nobody has
        gets = [p for m, p in self.routes if m == "GET" and "{id}" not in p
                and p not in ("/api/v1/health", "/api/v1/openapi.json")]
        for path in gets:
            for name in names:
                values = self.rng.sample(HOSTILE_VALUES, 12)
                for value in values:
                    target = f"{path}?{quote(name)}={quote(value)}"
                    answer = self.send("GET", target, "admin")
                    if name in exact_text and answer[0] == 200:
                        # Valid, for a name nobody has: no stored alert may come back.
                        for alert_id in self.alert_ids:
                            self.assertNotIn(alert_id.encode(), answer[2],
                                             f"{target}: a hostile filter matched alerts")
                        self.count += 1
                        continue
                    self.check(f"GET {path} {name}={value!r}", answer)
            # Repeated, unescaped and broken escapes.
            for query in ["limit=1&limit=2", "severity=1&severity=2", "limit=%", "limit=%zz",
                          "severity=%00", "since=%ff%fe", "&&&", "=1", "limit", "a=%c0%ae"]:
                answer = self.send("GET", f"{path}?{query}", "admin")
                self.check(f"GET {path}?{query}", answer)

    def path_ids(self):
        ids = ["' OR '1'='1", "1 UNION SELECT * FROM users", "%27%20OR%201=1--", "%00",
               "a%00b", "%ff%fe", "..%2f..%2fusers", "%2e%2e", "x" * 300, "\u00e9\u00e9",
               self.alert_ids[0] + "'", self.alert_ids[0].upper(), self.alert_ids[0] + "%00",
               "%252e%252e", "*", "%", "_%", "null", "0", "-1"]
        for method, path in self.routes:
            if "{id}" not in path:
                continue
            for raw_id in ids:
                raw_id = raw_id if "%" in raw_id else quote(raw_id)
                target = self.concrete(path, raw_id)
                body = b""
                if method == "PATCH":
                    body = b'{"status": "resolved"}'  # valid: only the id is hostile
                elif method == "POST":
                    body = b'{"text": "injected"}'
                answer = self.send(method, target, "admin", {"Content-Type": "application/json"},
                                   body)
                # An id holding an encoded "/" can make the path another route's (405).
                self.check(f"{method} {target}", answer, allowed=(400, 404, 405))
        # In bulk ids too: one unknown id refuses all.
        for bad in ["' OR '1'='1", "%", "*", self.alert_ids[0] + "' --"]:
            body = json.dumps({"ids": [self.alert_ids[0], bad], "status": "resolved"}).encode()
            answer = self.send("POST", "/api/v1/alerts/bulk", "admin",
                               {"Content-Type": "application/json"}, body)
            self.check(f"bulk with id {bad!r}", answer, allowed=(400, 404))

    def bad_bodies(self):
        deep_array = b"[" * 60000 + b"]" * 60000
        deep_object = b'{"a":' * 12000 + b"1" + b"}" * 12000
        bodies = [
            b"", b"{", b"}", b"{\"status\": ", b"[]", b"\"resolved\"", b"1", b"null", b"true",
            b"{\"status\": \"resolved\"", b"{'status': 'resolved'}", b"{status: resolved}",
            b"\xff\xfe{\x00\"\x00", b"{\"status\": \"res\x00olved\"}", b"{\"status\": \"\xc3\x28\"}",
            b"{\"status\": 1}", b"{\"status\": null}", b"{\"status\": [\"resolved\"]}",
            b"{\"status\": {\"$ne\": 1}}", b"{\"status\": \"resolved' --\"}",
            b"{\"status\": \"RESOLVED\"}", b"{\"assignee\": 7}", b"{\"assignee\": \"nobody\"}",
            b"{\"assignee\": \"' OR 1=1 --\"}", b"{\"status\": \"resolved\", \"x\": 1}",
            b"{\"ids\": \"all\", \"status\": \"resolved\"}", b"{\"ids\": [1, 2], \"status\": \"resolved\"}",
            b"{\"ids\": [], \"status\": \"resolved\"}", b"{\"ids\": null, \"status\": \"resolved\"}",
            json.dumps({"ids": ["x"] * 1001, "status": "resolved"}).encode(),
            b"{\"text\": 5}", b"{\"text\": \"\"}", json.dumps({"text": "a" * 4001}).encode(),
            b"{\"text\": null}", b"{\"name\": 1, \"password\": 2}", b"{\"name\": \"a\"}",
            b"{\"name\": [], \"password\": {}}", b"{\"status\": \"resolved\"}" * 3,
            b"{\"a\": 1e999999}", b"{\"a\": -}", b"{\"a\": 0x10}", b"{\"a\": NaN}",
            b"{\"a\": \"\\ud800\"}", b"{\"a\": \"\\u0000\"}",
            deep_array[:65000], deep_object[:65000], b"[" * 65000, b"{\"a\":[" * 9000,
        ]
        # Logout reads no body (it ends the cookie's session, if any, and always answers 200);
        # forged cookies there are in auth_attacks.
        body_routes = [(m, p) for m, p in self.routes if m in ("POST", "PATCH", "PUT")
                       and p != "/api/v1/logout"]
        self.assertTrue(body_routes)
        for method, path in body_routes:
            target = self.concrete(path, self.alert_ids[3])
            role = "admin"
            for body in bodies:
                answer = self.send(method, target, role, {"Content-Type": "application/json"},
                                   body)
                self.check(f"{method} {path} body {body[:40]!r}", answer)
            # The right JSON under the wrong type is refused before it is parsed.
            for ctype in ["text/plain", "application/x-www-form-urlencoded", "",
                          "multipart/form-data; boundary=x", "application/jsonx"]:
                answer = self.send(method, target, role, {"Content-Type": ctype},
                                   b'{"status": "resolved", "text": "x"}')
                status = answer[0]
                if ctype == "application/jsonx" and status == 200:
                    self.fail(f"{method} {path}: {ctype} accepted as JSON")
                self.check(f"{method} {path} as {ctype!r}", answer)

    def oversized(self):
        big = json.dumps({"text": "x" * (70 * 1024)}).encode()
        for method, path in [(m, p) for m, p in self.routes if m in ("POST", "PATCH")]:
            target = self.concrete(path, self.alert_ids[4])
            # A declared length above the limit: refused before the body is read.
            answer = self.send(method, target, "admin", {"Content-Type": "application/json"}, big)
            self.check(f"{method} {path} 70 KiB body", answer, allowed=(413,))
            # The same without a declared length, chunked (to the routes that read a body).
            if path == "/api/v1/logout":
                continue
            chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 4096]), big[i:i + 4096])
                               for i in range(0, len(big), 4096)) + b"0\r\n\r\n"
            answer = self.send(method, target, "admin",
                               {"Content-Type": "application/json",
                                "Transfer-Encoding": "chunked"}, chunked)
            self.check(f"{method} {path} 70 KiB chunked", answer, allowed=(413,))
            # A broken Content-Length: a negative one reaches the API (413); one that is not a
            # number makes Poco drop the connection before the API sees the request (no answer
            # at all, which a client sees as a refusal; the server goes on serving).
            for length in ["-1", "abc", "99999999999999999999999", "1, 2"]:
                answer = self.send(method, target, "admin",
                                   {"Content-Type": "application/json",
                                    "Content-Length": length}, b'{"text": "x"}', timeout=30)
                self.check(f"{method} {path} Content-Length {length}", answer, problem=False,
                           allowed=(0, 400, 411, 413))
        # Headers and request lines beyond what any client sends: Poco refuses them before the
        # API sees them (no problem document), or the API answers 401/404.
        for what, headers, target in [
                ("one 100 KiB header", {"X-Big": "a" * (100 * 1024)}, "/api/v1/health"),
                ("200 headers", {f"X-H{i}": "v" * 100 for i in range(200)}, "/api/v1/health"),
                ("a 100 KiB target", {}, "/api/v1/alerts?agent=" + "a" * (100 * 1024)),
                ("a 9 KiB header name", {"X" * 9000: "v"}, "/api/v1/health")]:
            answer = self.send("GET", target, "admin", headers)
            self.check(what, answer, problem=False)
        # Not HTTP at all (a TLS hello, bare line ends), an HTTP version that does not exist
        # and a NUL in a header, each without credentials on a protected resource: Poco
        # refuses what it cannot parse (400 without a body, or it closes the connection), the
        # rest reaches the API and needs an account (401).
        for raw in [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
                    b"GET /api/v1/users HTTP/9.9\r\nHost: x\r\n\r\n",
                    b"GET\r\n\r\n", b"\r\n\r\n\r\n\r\n", b"\x00" * 100 + b"\r\n\r\n",
                    b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
                    b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                    + self.tokens["admin"].encode() + b"\x00\r\n\r\n"]:
            answer = raw_request(self.port, None, None, raw=raw)
            self.check(f"raw {raw[:24]!r}", answer, problem=answer[0] == 401,
                       allowed=(0, 400, 401))

    def traversal(self):
        for path in ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                     "/..%2f..%2f..%2fetc%2fpasswd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                     "/index.html/../../../etc/passwd", "/./../etc/passwd", "//etc/passwd",
                     "/%252e%252e/etc/passwd", "/..\\..\\etc\\passwd", "/%c0%ae%c0%ae/etc/passwd",
                     "/app.js%00.html", "/index.html%00", "/.%2e/.%2e/etc/passwd",
                     "/collector/web/index.html", "/../web/index.html", "/.git/config",
                     "/api/../../../etc/passwd", "/api/v1/%2e%2e/%2e%2e/etc/passwd",
                     "/api/v1/alerts/..%2f..%2f..%2fetc%2fpasswd", "/api/v1/agents/../../etc/passwd",
                     "/api/v1/agents/%2e%2e%2f%2e%2e%2fusers", "/proc/self/environ",
                     "/%2fetc%2fpasswd", "/web/../../../etc/shadow"]:
            for role in (None, "analyst"):
                answer = self.send("GET", path, role)
                self.check(f"GET {path} as {role}", answer, allowed=(400, 401, 404))
                self.assertNotIn(b"root:", answer[2], path)
        # Traversal to an admin resource does not lend an analyst the permission.
        for path in ["/api/v1/alerts/../users", "/api/v1/alerts/%2e%2e/users",
                     "/api/v1/me/../users", "/api/v1//users", "/api/v1/users/", "/API/V1/USERS",
                     "/api/v1/users%00", "/api/v1/users?x=/../"]:
            answer = self.send("GET", path, "analyst")
            self.check(f"analyst GET {path}", answer, allowed=(400, 403, 404))


if __name__ == "__main__":
    unittest.main(verbosity=2)
