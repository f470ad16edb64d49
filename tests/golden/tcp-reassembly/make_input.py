#!/usr/bin/python3
"""Writes input.pcap and intel.dat for the tcp-reassembly golden case: TCP streams that only
reassembly makes whole, and the ways a sender can try to make a sensor see something else than
the host does. Documentation addresses (RFC 5737) and .example names throughout:
  1. an HTTP download whose sequence numbers wrap, in the request and inside the response body;
     the response's segments come out of order and one is sent twice, unchanged. The file's
     MD5 (listed in intel.dat, computed here from the body) and a YARA marker that two segments
     share are only seen in the reassembled stream;
  2. an HTTP request whose URI a later segment, overlapping it, tries to turn into a listed URL;
     in the response, a segment held out of order is sent again with other bytes before the
     hole fills. The first copy wins (no hit on the listed URL, the body's MD5 is the first
     copy's) and each direction gets one rexmit_inconsistency weird;
  3. a Modbus/TCP session whose capture lost one segment (a whole request): the hole is a gap,
     counted in the conn record's missed_bytes, and the analyzer parses the requests after it;
  4. an HTTP response with a hole in its body: the file has missing_bytes and no digests.
Time stamps are fixed so that the files are the same on every run:
  /usr/bin/python3 make_input.py  (needs Debian's python3-scapy)
"""
import hashlib
import os
import struct
import sys

from scapy.all import IP, TCP, Ether, Raw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from scapy_session import MAC_A, MAC_B, Capture  # noqa: E402

CLIENT = "192.0.2.50"
SERVER = "203.0.113.90"
HMI = "192.0.2.30"
PLC = "192.0.2.40"
MSS = 1000

here = os.path.dirname(os.path.abspath(sys.argv[0]))
cap = Capture()


class Conn:
    """One TCP connection: the handshake, then segments at chosen stream offsets."""

    def __init__(self, client, cport, server, sport, client_isn, server_isn):
        self.c2s = Ether(src=MAC_A, dst=MAC_B) / IP(src=client, dst=server)
        self.s2c = Ether(src=MAC_B, dst=MAC_A) / IP(src=server, dst=client)
        self.cport, self.sport = cport, sport
        self.isn = {"c2s": client_isn, "s2c": server_isn}
        self.sent = {"c2s": 0, "s2c": 0}  # highest stream offset sent, for the ACKs and FIN
        cap.add(self.pkt("c2s", "S", self.isn["c2s"], 0))
        cap.add(self.pkt("s2c", "SA", self.isn["s2c"], self.isn["c2s"] + 1))
        cap.add(self.pkt("c2s", "A", self.isn["c2s"] + 1, self.isn["s2c"] + 1))

    def pkt(self, direction, flags, seq, ack, payload=b""):
        head = self.c2s if direction == "c2s" else self.s2c
        sport, dport = ((self.cport, self.sport) if direction == "c2s"
                        else (self.sport, self.cport))
        p = head / TCP(sport=sport, dport=dport, flags=flags, seq=seq % 2**32, ack=ack % 2**32)
        return p / Raw(payload) if payload else p

    def seq(self, direction, offset):
        return self.isn[direction] + 1 + offset

    def other(self, direction):
        return "s2c" if direction == "c2s" else "c2s"

    def send(self, direction, offset, payload):
        """PAYLOAD at stream OFFSET of DIRECTION."""
        ack = self.seq(self.other(direction), self.sent[self.other(direction)])
        cap.add(self.pkt(direction, "PA", self.seq(direction, offset), ack, payload))
        self.sent[direction] = max(self.sent[direction], offset + len(payload))

    def ack(self, direction):
        """The peer of DIRECTION acknowledges all it sent."""
        o = self.other(direction)
        cap.add(self.pkt(o, "A", self.seq(o, self.sent[o]),
                         self.seq(direction, self.sent[direction])))

    def close(self):
        c, s = self.seq("c2s", self.sent["c2s"]), self.seq("s2c", self.sent["s2c"])
        cap.add(self.pkt("c2s", "FA", c, s))
        cap.add(self.pkt("s2c", "FA", s, c + 1))
        cap.add(self.pkt("c2s", "A", c + 1, s + 1))
        cap.pause(0.05)


def segments(data):
    return [(off, data[off:off + MSS]) for off in range(0, len(data), MSS)]


def http_response(body):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def http_request(host, uri):
    return (f"GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: plant-updater/2.1\r\n"
            f"Accept: */*\r\n\r\n").encode()


def filler(n, seed):
    """N bytes that repeat nothing a marker or a header could be confused with."""
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) % 2**31
        out += struct.pack(">I", x)[1:]
    return bytes(out[:n])


# 1. Out of order, a retransmission, and sequence numbers that wrap in both directions.
marker = b"REASSEMBLY-GOLDEN-MARKER"
request1 = http_request("firmware.plant-vendor.example", "/plc/firmware-4.2.bin")
header_len = len(http_response(b"x" * 6000)) - 6000
at = 3 * MSS - header_len - len(marker) // 2  # the marker straddles segments 2 and 3
body1 = filler(at, 1) + marker + filler(6000 - at - len(marker), 2)
response1 = http_response(body1)
conn = Conn(CLIENT, 49500, SERVER, 80, client_isn=2**32 - 40, server_isn=2**32 - 4000)
for off, chunk in segments(request1):
    conn.send("c2s", off, chunk)
conn.ack("c2s")
parts = segments(response1)
for i in [1, 0, 3, 2, 5, 4, 3, 6]:  # pairs swapped; segment 3 twice
    conn.send("s2c", *parts[i])
conn.ack("s2c")
conn.close()

# 2. Overlaps with other bytes, in each direction.
request2 = http_request("docs.plant-vendor.example", "/manuals/hmi-guide.html")
forged_uri = b"/evil/dropper.exe"
uri_at = request2.index(b"/manuals")
body2 = filler(2500, 3)
response2 = http_response(body2)
conn = Conn(CLIENT, 49501, SERVER, 80, client_isn=700000, server_isn=800000)
conn.send("c2s", 0, request2[:uri_at + 10])
conn.send("c2s", uri_at + 10, request2[uri_at + 10:])
# Sent again over both, with another URI (the listed one) in place of the first.
conn.send("c2s", uri_at, forged_uri + request2[uri_at + len(forged_uri):uri_at + 40])
conn.ack("c2s")
parts = segments(response2)
conn.send("s2c", *parts[1])  # held behind segment 0
off, chunk = parts[1]
conn.send("s2c", off, chunk[:100] + b"\x00" * 50 + chunk[150:])  # other bytes, still held
conn.send("s2c", *parts[0])
conn.send("s2c", *parts[2])
conn.ack("s2c")
conn.close()

# 3. Modbus/TCP: the capture lost the second request (a write of register 7).
def mbap(tid, unit, pdu):
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


requests = [
    mbap(1, 1, struct.pack(">BHH", 3, 0, 10)),           # read holding registers 0-9
    mbap(2, 1, struct.pack(">BHH", 6, 7, 1234)),         # write register 7: lost
    mbap(3, 1, struct.pack(">BHHB", 16, 20, 2, 4) + struct.pack(">HH", 5, 6)),  # write 20-21
    mbap(4, 1, struct.pack(">BHH", 1, 0, 8)),            # read coils 0-7
]
responses = [
    mbap(1, 1, struct.pack(">BB", 3, 20) + bytes(20)),
    mbap(2, 1, struct.pack(">BHH", 6, 7, 1234)),
    mbap(3, 1, struct.pack(">BHH", 16, 20, 2)),
    mbap(4, 1, struct.pack(">BBB", 1, 1, 0x5a)),
]
conn = Conn(HMI, 50300, PLC, 502, client_isn=3000, server_isn=9000)
coff = soff = 0
for i, (req, resp) in enumerate(zip(requests, responses)):
    if i != 1:
        conn.send("c2s", coff, req)
    coff += len(req)
    conn.send("s2c", soff, resp)
    soff += len(resp)
conn.sent["c2s"] = coff
conn.close()

# 4. A response body with a hole: its middle segment never captured.
request4 = http_request("docs.plant-vendor.example", "/reports/shift-log.pdf")
response4 = http_response(filler(3000, 4))
conn = Conn(CLIENT, 49502, SERVER, 80, client_isn=100, server_isn=200)
conn.send("c2s", 0, request4)
conn.ack("c2s")
for i, (off, chunk) in enumerate(segments(response4)):
    if i != 2:
        conn.send("s2c", off, chunk)
conn.sent["s2c"] = len(response4)
conn.ack("s2c")
conn.close()

cap.write(os.path.join(here, "input.pcap"))
with open(os.path.join(here, "intel.dat"), "w") as f:
    f.write("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n")
    f.write("firmware.plant-vendor.example\tIntel::DOMAIN\tgolden\t"
            "request across the sequence wrap\n")
    f.write(f"{hashlib.md5(body1).hexdigest()}\tIntel::FILE_HASH\tgolden\t"
            "the out-of-order body, hashed here\n")
    f.write(f"{hashlib.sha256(body2).hexdigest()}\tIntel::FILE_HASH\tgolden\t"
            "the body as first sent (the rewrite kept out)\n")
    f.write("docs.plant-vendor.example/evil/dropper.exe\tIntel::URL\tgolden\t"
            "the URI the overlapping segment tried to write\n")
print(f"wrote {len(cap.packets)} packets and intel.dat in {here}")
