#!/usr/bin/python3
"""Writes the seed corpora of the analyzer fuzz targets (corpus/<target>/) from the flows of
the IT golden capture: each TCP flow's segments (or each UDP datagram) in the script format of
fuzz_analyzer.h: a header byte (top bit the direction, low 7 bits the length), then the bytes.
  /usr/bin/python3 make_analyzer_seeds.py   (needs python3-scapy)
"""
import os
import sys
import zlib

from scapy.all import IP, TCP, UDP, rdpcap

HERE = os.path.dirname(os.path.abspath(sys.argv[0]))
CAPTURE = os.path.join(HERE, "..", "golden", "it-analyzers", "input.pcap")
TARGETS = {("TCP", 80): "http", ("TCP", 8080): "http", ("TCP", 443): "tls", ("TCP", 25): "smtp",
           ("TCP", 445): "smb", ("TCP", 53): "dns_tcp", ("UDP", 53): "dns_udp"}


def script(segments):
    out = bytearray()
    for direction, payload in segments:
        for off in range(0, len(payload), 127):
            chunk = payload[off:off + 127]
            out.append((direction << 7) | len(chunk))
            out += chunk
    return bytes(out)


flows = {}
for pkt in rdpcap(CAPTURE):
    if IP not in pkt:
        continue
    layer = TCP if TCP in pkt else UDP if UDP in pkt else None
    if layer is None or not bytes(pkt[layer].payload):
        continue
    sport, dport = pkt[layer].sport, pkt[layer].dport
    proto = "TCP" if layer is TCP else "UDP"
    server = dport if (proto, dport) in TARGETS else sport
    key = (proto, server, min(sport, dport), max(sport, dport))
    flows.setdefault(key, []).append((0 if dport == server else 1, bytes(pkt[layer].payload)))

counts = {}
for (proto, server, _, _), segments in sorted(flows.items()):
    target = TARGETS.get((proto, server))
    if target is None:
        continue
    os.makedirs(os.path.join(HERE, "corpus", target), exist_ok=True)
    n = counts.get(target, 0)
    counts[target] = n + 1
    with open(os.path.join(HERE, "corpus", target, f"seed-{n:02d}"), "wb") as f:
        f.write(script(segments))
# HTTP bodies with Content-Encoding (gzip chunked, deflate with and without its zlib header),
# which the capture has none of.
page = b"<html>" + b"".join(b"<p>row %d</p>" % i for i in range(40)) + b"</html>"
gz = zlib.compressobj(6, zlib.DEFLATED, 31)
raw = zlib.compressobj(6, zlib.DEFLATED, -15)
bodies = [(b"gzip", gz.compress(page) + gz.flush()), (b"deflate", zlib.compress(page)),
          (b"deflate", raw.compress(page) + raw.flush())]
segments = []
for encoding, body in bodies:
    segments.append((0, b"GET /p HTTP/1.1\r\nHost: h.example\r\n\r\n"))
    segments.append((1, b"HTTP/1.1 200 OK\r\nContent-Encoding: " + encoding +
                     b"\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"))
with open(os.path.join(HERE, "corpus", "http", "seed-encoded"), "wb") as f:
    f.write(script(segments))
counts["http"] += 1
# A multipart upload with a preamble, transport padding, a part without headers and an
# epilogue, chunked, behind Basic authorization: the streaming part splitter's paths.
form = (b"preamble\r\n--bnd \r\nContent-Disposition: form-data; name=\"a\"; filename=\"x.bin\"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + bytes(range(256)) + b"\r\n--bnd\r\n\r\n"
        b"plain\r\n--bnd\r\nContent-Disposition: form-data; name=\"b\"; filename=\"y.txt\"\r\n\r\n"
        b"-\r\n--bn\r\n--bnd--\r\nepilogue")
upload = (b"POST /up HTTP/1.1\r\nHost: h.example\r\nAuthorization: Basic dXNlcjpwdw==\r\n"
          b"Content-Type: multipart/form-data; boundary=bnd\r\nTransfer-Encoding: chunked\r\n\r\n" +
          b"%x\r\n" % len(form) + form + b"\r\n0\r\n\r\n")
with open(os.path.join(HERE, "corpus", "http", "seed-multipart"), "wb") as f:
    f.write(script([(0, upload), (1, b"HTTP/1.1 204 No Content\r\n\r\n")]))
counts["http"] += 1
print("seeds:", counts)
