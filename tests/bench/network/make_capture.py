#!/usr/bin/python3
"""Generates the network benchmark's captures, fast: packets are built from byte templates
with struct packing (scapy would take an hour for 400 MB), addresses and ports vary so that
there are many flows.

  make_capture.py mixed OUT.pcap --megabytes 420 [--bodies OUT.bodies]
                                                      the throughput capture (and its HTTP
                                                      bodies, one after the other)
  make_capture.py concurrent OUT.pcap --flows 100000  every flow open at once (RSS)
  make_capture.py intel OUT.dat --count 100000        Zeek intel, a few entries hit
  make_capture.py rules OUT.yar --count 200           YARA stream rules, a few hit

The mixed capture interleaves 64 sessions at a time: HTTP/1.1 downloads with bodies of 2-64 KB
(5 in 10 sessions), DNS over UDP (2 in 10), TLS 1.2 with SNI, a real certificate and
application data (2 in 10), Modbus/TCP reads and a write (1 in 10). IP, TCP and UDP checksums
are right: the agent verifies them.
"""
import argparse
import os
import random
import struct
import subprocess
import sys
import tempfile

ETH = b"\x00\x16\x3e\x00\x00\x02\x00\x16\x3e\x00\x00\x01\x08\x00"
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
MSS = 1448
DOMAIN = "bench.example"


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb", buffering=1 << 22)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.t = 1_700_000_000_000_000  # microseconds
        self.bytes = 0

    def frame(self, frame):
        self.t += 7
        n = len(frame)
        self.f.write(struct.pack("<IIII", self.t // 1_000_000, self.t % 1_000_000, n, n))
        self.f.write(frame)
        self.bytes += n + 16


def checksum(data):
    """The Internet checksum (RFC 1071) of DATA: its 16-bit words' one's complement sum is the
    big number DATA modulo 0xffff (2^16 is 1 modulo 0xffff), which Python computes in C."""
    if len(data) % 2:
        data += b"\0"
    rest = int.from_bytes(data, "big") % 0xFFFF
    total = rest if rest or not any(data) else 0xFFFF
    return 0xFFFF - total


def ipv4(src, dst, proto, l4):
    """An Ethernet frame: the IPv4 header and L4 (TCP or UDP) with their checksums right."""
    at = 16 if proto == 6 else 6
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(l4))
    field = checksum(pseudo + l4)  # the field is zero in L4 yet
    if proto == 17 and field == 0:
        field = 0xFFFF  # UDP's zero means "no checksum"
    l4 = l4[:at] + struct.pack("!H", field) + l4[at + 2:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, src,
                         dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return ETH + header + l4


def tcp(src, sport, dst, dport, seq, ack, flags, payload=b""):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50,
                      flags, 65535, 0, 0)
    return ipv4(src, dst, 6, hdr + payload)


def udp(src, sport, dst, dport, payload):
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)


def addr(a, b, c, d):
    return bytes((a, b, c, d))


class Tcp:
    """Both directions of one connection: handshake, data in MSS segments, teardown."""

    def __init__(self, cli, cport, srv, sport, isn):
        self.c, self.cp, self.s, self.sp = cli, cport, srv, sport
        self.cseq, self.sseq = isn, isn ^ 0x5A5A5A5A

    def open(self):
        yield tcp(self.c, self.cp, self.s, self.sp, self.cseq, 0, SYN)
        yield tcp(self.s, self.sp, self.c, self.cp, self.sseq, self.cseq + 1, SYN | ACK)
        self.cseq += 1
        self.sseq += 1
        yield tcp(self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, ACK)

    def send(self, from_client, data):
        for off in range(0, len(data), MSS):
            chunk = data[off:off + MSS]
            if from_client:
                yield tcp(self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, PSH | ACK, chunk)
                self.cseq += len(chunk)
            else:
                yield tcp(self.s, self.sp, self.c, self.cp, self.sseq, self.cseq, PSH | ACK, chunk)
                self.sseq += len(chunk)

    def close(self):
        yield tcp(self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, FIN | ACK)
        yield tcp(self.s, self.sp, self.c, self.cp, self.sseq, self.cseq + 1, FIN | ACK)
        yield tcp(self.c, self.cp, self.s, self.sp, self.cseq + 1, self.sseq + 1, ACK)


def make_certificate():
    with tempfile.TemporaryDirectory() as tmp:
        key, der = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.der")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-outform", "DER", "-out", der, "-days", "3650", "-subj",
                        "/CN=www." + DOMAIN, "-addext",
                        f"subjectAltName=DNS:www.{DOMAIN},DNS:cdn.{DOMAIN}"],
                       check=True, capture_output=True)
        with open(der, "rb") as f:
            return f.read()


def hs(kind, body):
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def record(kind, body):
    return bytes([kind]) + b"\x03\x03" + struct.pack("!H", len(body)) + body


def client_hello(rng, sni):
    name = sni.encode()
    sni_ext = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    groups = struct.pack("!HHH", 0x000A, 6, 4) + struct.pack("!HH", 0x001D, 0x0017)
    points = struct.pack("!HHB", 0x000B, 2, 1) + b"\x00"
    exts = sni_ext + groups + points
    suites = struct.pack("!7H", 0xC02B, 0xC02F, 0xC02C, 0xC030, 0x009E, 0x009C, 0x002F)
    body = (b"\x03\x03" + rng.randbytes(32) + b"\x00" + struct.pack("!H", len(suites)) + suites +
            b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return record(0x16, hs(0x01, body))


def server_flight(rng, cert):
    hello = hs(0x02, b"\x03\x03" + rng.randbytes(32) + b"\x00\xc0\x2f\x00\x00\x00")
    chain = len(cert).to_bytes(3, "big") + cert
    certificate = hs(0x0B, len(chain).to_bytes(3, "big") + chain)
    return record(0x16, hello + certificate + hs(0x0E, b""))


def dns_query(qid, name, answer=None):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"
    if answer is None:
        return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q
    return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q +
            struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + answer)


class Traffic:
    def __init__(self, seed, bodies=None):
        self.rng = random.Random(seed)
        self.bodies = bodies  # a file that gets every HTTP body, or None
        words = [w.encode() for w in (
            "the data plant pump valve setpoint alarm operator shift report tank level flow "
            "pressure sensor reading maintenance schedule invoice customer order shipment").split()]
        text = b" ".join(self.rng.choice(words) for _ in range(260_000))
        self.pool = text[:1 << 20]
        self.cert = make_certificate()

    def body(self, i, size):
        off = (i * 7919) % (len(self.pool) - size)
        data = self.pool[off:off + size]
        if i % 97 == 0:  # a few bodies carry what the benchmark's YARA rules look for
            data = data[:100] + b"powershell -enc SQBFAFgA bench-implant-beacon" + data[146:]
        return data

    def endpoints(self, i):
        cli = addr(10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)
        srv = addr(172, 16, (i >> 3) & 0x3F, 1 + (i % 200))
        return cli, 1024 + (i * 7) % 60000, srv

    def http(self, i, size, close=True):
        cli, cport, srv = self.endpoints(i)
        t = Tcp(cli, cport, srv, 80, self.rng.getrandbits(32))
        host = f"host{i % 5000}.{DOMAIN}"
        body = self.body(i, size)
        if self.bodies is not None:
            self.bodies.write(body)
        req = (f"GET /files/report-{i}.pdf HTTP/1.1\r\nHost: {host}\r\n"
               f"User-Agent: Mozilla/5.0 (bench)\r\nAccept: */*\r\n\r\n").encode()
        resp = (f"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        yield from t.open()
        yield from t.send(True, req)
        yield from t.send(False, resp)
        if close:
            yield from t.close()

    def tls(self, i, app_records=4, close=True):
        cli, cport, srv = self.endpoints(i)
        t = Tcp(cli, cport, srv, 443, self.rng.getrandbits(32))
        yield from t.open()
        yield from t.send(True, client_hello(self.rng, f"host{i % 5000}.{DOMAIN}"))
        yield from t.send(False, server_flight(self.rng, self.cert))
        yield from t.send(True, record(0x14, b"\x01") + record(0x16, self.rng.randbytes(40)))
        for _ in range(app_records):
            yield from t.send(True, record(0x17, self.rng.randbytes(300)))
            yield from t.send(False, record(0x17, self.rng.randbytes(1400)))
        if close:
            yield from t.close()

    def modbus(self, i, close=True):
        cli, cport, srv = self.endpoints(i)
        t = Tcp(cli, cport, srv, 502, self.rng.getrandbits(32))
        yield from t.open()
        for tid in range(6):
            if tid == 5:
                req = struct.pack("!HHHBBHH", tid, 0, 6, 1, 6, 40, 1234)
                rsp = req
            else:
                req = struct.pack("!HHHBBHH", tid, 0, 6, 1, 3, 100 * tid, 10)
                rsp = struct.pack("!HHHBBB", tid, 0, 23, 1, 3, 20) + self.rng.randbytes(20)
            yield from t.send(True, req)
            yield from t.send(False, rsp)
        if close:
            yield from t.close()

    def dns(self, i):
        cli, cport, srv = self.endpoints(i)
        name = f"host{i % 5000}.{DOMAIN}"
        yield udp(cli, cport, srv, 53, dns_query(i & 0xFFFF, name))
        yield udp(srv, 53, cli, cport, dns_query(i & 0xFFFF, name, addr(172, 16, 0, 1 + i % 200)))

    def session(self, i):
        kind = i % 10
        if kind < 5:
            return self.http(i, self.rng.randint(2048, 65536))
        if kind < 7:
            return self.dns(i)
        if kind < 9:
            return self.tls(i)
        return self.modbus(i)


def mixed(path, megabytes, seed, bodies_path=None):
    bodies = open(bodies_path, "wb", buffering=1 << 22) if bodies_path else None
    traffic = Traffic(seed, bodies)
    w = Writer(path)
    limit = megabytes << 20
    active, nxt = [], 0
    while w.bytes < limit or active:
        while len(active) < 64 and w.bytes < limit:
            active.append(traffic.session(nxt))
            nxt += 1
        still = []
        for gen in active:
            frame = next(gen, None)
            if frame is not None:
                w.frame(frame)
                still.append(gen)
        active = still
    w.f.close()
    print(f"{path}: {w.bytes / 1e6:.0f} MB, {nxt} sessions")
    if bodies is not None:
        print(f"{bodies_path}: {bodies.tell() / 1e6:.0f} MB of HTTP bodies")
        bodies.close()


def concurrent(path, flows, seed):
    """Every flow opens and exchanges data before the first one closes."""
    traffic = Traffic(seed)
    w = Writer(path)
    conns = []
    for i in range(flows):
        kind = i % 3
        if kind == 0:
            gen = traffic.http(i, 1024, close=False)
        elif kind == 1:
            gen = traffic.tls(i, app_records=1, close=False)
        else:
            gen = traffic.modbus(i, close=False)
        for frame in gen:
            w.frame(frame)
        conns.append(i)
    # Then every flow closes (the ports and addresses of session i, as above).
    for i in conns:
        cli, cport, srv = traffic.endpoints(i)
        sport = (80, 443, 502)[i % 3]
        w.frame(tcp(cli, cport, srv, sport, 0, 0, RST))
    w.f.close()
    print(f"{path}: {w.bytes / 1e6:.0f} MB, {flows} concurrent flows")


def intel(path, count):
    rng = random.Random(7)
    with open(path, "w") as f:
        f.write("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n")
        hits = [f"host{n}.{DOMAIN}" for n in (11, 222, 3333)]
        for h in hits:
            f.write(f"{h}\tIntel::DOMAIN\tbench\tknown bad (planted)\n")
        for n in range(count - len(hits)):
            kind = n % 4
            if kind == 0:
                value, t = f"198.{18 + (n >> 16) % 2}.{(n >> 8) & 255}.{n & 255}", "Intel::ADDR"
            elif kind == 1:
                value, t = f"c2-{rng.getrandbits(40):010x}.example.net", "Intel::DOMAIN"
            elif kind == 2:
                value, t = f"dl-{n}.example.org/payload/{rng.getrandbits(32):08x}.bin", "Intel::URL"
            else:
                value, t = f"{rng.getrandbits(128):032x}", "Intel::FILE_HASH"
            f.write(f"{value}\t{t}\tbench\tgenerated indicator {n}\n")
    print(f"{path}: {count} indicators")


def rules(path, count):
    rng = random.Random(11)
    verbs = ["invoke", "download", "inject", "beacon", "dump", "exfil", "spawn", "persist"]
    nouns = ["payload", "shellcode", "credential", "token", "implant", "loader", "stager", "hook"]
    with open(path, "w") as f:
        for n in range(count):
            a = f"{rng.choice(verbs)}-{rng.choice(nouns)}-{rng.getrandbits(24):06x}"
            b = " ".join(f"{rng.getrandbits(8):02X}" for _ in range(8))
            c = f"/{rng.choice(nouns)}/{rng.getrandbits(20):05x}.php"
            extra = '\n        $d = "bench-implant-beacon"' if n == 0 else ""
            extra += '\n        $e = "powershell -enc" nocase' if n == 1 else ""
            f.write(f"rule bench_stream_{n:03d}\n{{\n    meta:\n        severity = \"high\"\n"
                    f"        category = \"Bench\"\n    strings:\n        $a = \"{a}\"\n"
                    f"        $b = {{ {b} }}\n        $c = \"{c}\" ascii wide{extra}\n"
                    f"    condition:\n        any of them\n}}\n\n")
    print(f"{path}: {count} rules")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["mixed", "concurrent", "intel", "rules"])
    p.add_argument("out")
    p.add_argument("--megabytes", type=int, default=420)
    p.add_argument("--flows", type=int, default=100_000)
    p.add_argument("--count", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bodies", help="mixed: also write the HTTP bodies to this file")
    a = p.parse_args()
    if a.what == "mixed":
        mixed(a.out, a.megabytes, a.seed, a.bodies)
    elif a.what == "concurrent":
        concurrent(a.out, a.flows, a.seed)
    elif a.what == "intel":
        intel(a.out, a.count or 100_000)
    else:
        rules(a.out, a.count or 200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
