#!/usr/bin/python3
"""Writes input.pcap for the ip-fragments golden case: what is only visible once IP fragments
are reassembled. Documentation addresses (RFC 5737, RFC 3849) and .example names throughout:
  1. a DNS query over IPv4 for a listed domain, in two fragments; the answer whole;
  2. an HTTP download whose request (Host header listed) is three fragments sent last first,
     and whose response body (the YARA marker in it) is fragmented too;
  3. a DNS query over IPv6 for another listed domain, in fragments (fragment header);
  4. a DNS query whose middle fragment overlaps the first with other bytes (an attempt to
     change the name): the first copy wins, and the flow gets a fragment_inconsistency weird;
  5. a first fragment whose datagram never completes: dropped at the end, counted.
Time stamps are fixed so that the file is the same on every run:
  /usr/bin/python3 make_input.py  (needs Debian's python3-scapy)
"""
import os
import sys

from scapy.all import (DNS, DNSQR, DNSRR, IP, UDP, Ether, IPv6, IPv6ExtHdrFragment, Raw,
                       fragment, fragment6, raw)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from scapy_session import MAC_A, MAC_B, Capture  # noqa: E402

CLIENT = "192.0.2.21"
RESOLVER = "192.0.2.1"
SERVER = "203.0.113.80"
CLIENT6 = "2001:db8::21"
RESOLVER6 = "2001:db8::1"

cap = Capture()


def ether(pkt, to_server=True):
    return (Ether(src=MAC_A, dst=MAC_B) if to_server else Ether(src=MAC_B, dst=MAC_A)) / pkt


# 1. A fragmented DNS query over IPv4, its answer whole.
name = "fragments.update-server.example"
query = IP(src=CLIENT, dst=RESOLVER, id=0x1001) / UDP(sport=53100, dport=53) / DNS(
    id=0x0f01, rd=1, qd=DNSQR(qname=name, qtype="A"))
for frag in fragment(query, fragsize=24):
    cap.add(ether(frag))
cap.add(ether(IP(src=RESOLVER, dst=CLIENT) / UDP(sport=53, dport=53100) /
              DNS(id=0x0f01, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype="A"),
                  an=DNSRR(rrname=name, type="A", ttl=300, rdata=SERVER)), False), step=0.02)

# 2. HTTP over fragmented IP: the request's fragments last first, the response's in order.
body = b"firmware image\n" + b"FRAGMENTED-IMPLANT-MARKER\n" + bytes(range(256)) * 4
request = (b"GET /updates/fw.bin HTTP/1.1\r\nHost: fragments.update-server.example\r\n"
           b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
cap.pause(0.05)
session = Capture(cap.now)
session.tcp_session(CLIENT, 49300, SERVER, 80, [("c2s", request), ("s2c", response)],
                    client_isn=5000, server_isn=900000)
ip_id = 0x2000
for pkt in session.packets:
    if Raw not in pkt:
        cap.add(pkt)
        continue
    ip_id += 1
    ip = pkt[IP]
    ip.id = ip_id
    frags = fragment(ip, fragsize=64)
    if pkt[IP].src == CLIENT:
        frags = frags[::-1]
    for frag in frags:
        cap.add(Ether(src=pkt[Ether].src, dst=pkt[Ether].dst) / frag)

# 3. A fragmented DNS query over IPv6.
name6 = "v6-fragments.update-server.example"
query6 = (IPv6(src=CLIENT6, dst=RESOLVER6) / IPv6ExtHdrFragment(id=0x6001) /
          UDP(sport=53200, dport=53) / DNS(id=0x0f02, rd=1, qd=DNSQR(qname=name6, qtype="AAAA")))
cap.pause(0.05)
for frag in fragment6(query6, 80):
    cap.add(Ether(src=MAC_A, dst=MAC_B, type=0x86DD) / frag)

# 4. Overlapping fragments: the second rewrites bytes 16-23 of the datagram (inside the name).
name4 = "original-name.update-server.example"
whole = IP(src=CLIENT, dst=RESOLVER) / UDP(sport=53300, dport=53) / DNS(
    id=0x0f03, rd=1, qd=DNSQR(qname=name4, qtype="A"))
l4 = raw(whole)[20:]
forged = l4[:16] + b"XXXXXXXX" + l4[24:]
cap.pause(0.05)
cap.add(ether(IP(src=CLIENT, dst=RESOLVER, id=0x3001, proto=17, flags="MF", frag=0) /
              Raw(l4[:24])))
cap.add(ether(IP(src=CLIENT, dst=RESOLVER, id=0x3001, proto=17, flags="MF", frag=2) /
              Raw(forged[16:40])))
cap.add(ether(IP(src=CLIENT, dst=RESOLVER, id=0x3001, proto=17, frag=5) / Raw(l4[40:])))

# 5. The first fragment of a datagram whose other fragments never come.
cap.pause(0.05)
lost = IP(src=CLIENT, dst=RESOLVER, id=0x4001) / UDP(sport=53400, dport=53) / DNS(
    id=0x0f04, rd=1, qd=DNSQR(qname="never-completed.update-server.example", qtype="A"))
cap.add(ether(fragment(lost, fragsize=24)[0]))

out = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "input.pcap")
cap.write(out)
print(f"wrote {len(cap.packets)} packets to {out}")
