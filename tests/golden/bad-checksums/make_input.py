#!/usr/bin/python3
"""Writes input.pcap and intel.dat for the bad-checksums golden case: packets whose checksums
are wrong, as a capture taken on a host whose network card fills them in shows that host's
own packets. Each is counted, its flow gets one weird record naming the checksum and the value
it should have, and the packet is inspected all the same (Zeek's -C). Documentation addresses
(RFC 5737) and .example names throughout:
  1. an HTTP download whose client segments all carry a TCP checksum of zero: the listed URL
     still hits, one bad_TCP_checksum weird for the flow;
  2. a DNS query for a listed domain with a wrong UDP checksum: the hit, a bad_UDP_checksum;
  3. a DNS query whose IPv4 header checksum is wrong: parsed, a bad_IP_checksum;
  4. a DNS query for a listed domain in IPv4 fragments, the last with a wrong header
     checksum: reassembled, the hit, a bad_IP_checksum naming the datagram.
Time stamps are fixed so that the files are the same on every run:
  /usr/bin/python3 make_input.py  (needs Debian's python3-scapy)
"""
import os
import sys

from scapy.all import DNS, DNSQR, IP, TCP, UDP, Ether, fragment

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from scapy_session import MAC_A, MAC_B, Capture  # noqa: E402

CLIENT = "192.0.2.70"
SERVER = "203.0.113.80"
RESOLVER = "198.51.100.53"

here = os.path.dirname(os.path.abspath(sys.argv[0]))
cap = Capture()

# 1. The download; then every client segment's checksum is zeroed.
request = (b"GET /updates/agent-tool.exe HTTP/1.1\r\nHost: updates.vendor-mirror.example\r\n"
           b"User-Agent: updater/2.1\r\n\r\n")
body = b"MZ" + bytes(range(256)) * 8
response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
first = len(cap.packets)
cap.tcp_session(CLIENT, 50100, SERVER, 80, [("c2s", request), ("s2c", response)],
                client_isn=4000, server_isn=9000)
for p in cap.packets[first:]:
    if p[IP].src == CLIENT:
        p[TCP].chksum = 0


def query(name, qid, sport):
    return (Ether(src=MAC_A, dst=MAC_B) / IP(src=CLIENT, dst=RESOLVER, id=qid) /
            UDP(sport=sport, dport=53) / DNS(id=qid, rd=1, qd=DNSQR(qname=name)))


# 2. A wrong UDP checksum.
q = query("beacon.c2-relay.example", 0x2001, 53001)
q[UDP].chksum = 0x1234
cap.add(q)
# 3. A wrong IPv4 header checksum.
q = query("historian.plant.example", 0x2002, 53002)
q[IP].chksum = 0x4321
cap.add(q)
# 4. Fragments of 32 bytes, the last one's header checksum wrong.
q = query("exfil.c2-relay.example", 0x2003, 53003)
q = q.__class__(bytes(q))  # checksums computed over the whole datagram first
parts = fragment(q[IP], fragsize=32)
parts[-1][IP].chksum = 0x0bad
for part in parts:
    cap.add(Ether(src=MAC_A, dst=MAC_B) / part)

cap.write(os.path.join(here, "input.pcap"))
with open(os.path.join(here, "intel.dat"), "w") as f:
    f.write("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n")
    f.write("updates.vendor-mirror.example/updates/agent-tool.exe\tIntel::URL\tgolden\t"
            "requested in segments with a zero checksum\n")
    f.write("beacon.c2-relay.example\tIntel::DOMAIN\tgolden\tasked with a wrong UDP checksum\n")
    f.write("exfil.c2-relay.example\tIntel::DOMAIN\tgolden\tasked in fragments, one with a "
            "wrong header checksum\n")
print(f"{os.path.join(here, 'input.pcap')}: {len(cap.packets)} packets")
