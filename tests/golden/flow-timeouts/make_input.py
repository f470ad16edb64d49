#!/usr/bin/python3
"""Writes input.pcap for the flow-timeouts golden case: the agent's default timeouts on the
traffic of a control network. Documentation addresses (RFC 5737) throughout:
  1. an HMI polls a PLC over one Modbus/TCP connection for two and a half hours, a read every
     four minutes and a register write near the end, never idle (for the idle timeout of
     300 s) and never closed until the end: the absolute timeout (3600 s) ends the flow at the first packet past each hour and
     the connection goes on in a new flow with the same originator, whose Modbus analyzer
     picks the stream up by content (three conn records, every request and the write parsed);
  2. a client asks a DNS server the same question twice from the same port, six minutes
     apart: the idle timeout (300 s) ends the first flow, the second query starts another.
Time stamps are fixed so that the file is the same on every run:
  /usr/bin/python3 make_input.py  (needs Debian's python3-scapy)
"""
import os
import struct
import sys

from scapy.all import DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether, Raw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from scapy_session import MAC_A, MAC_B, Capture  # noqa: E402

HMI = "192.0.2.30"
PLC = "192.0.2.40"
CLIENT = "192.0.2.50"
RESOLVER = "198.51.100.53"

here = os.path.dirname(os.path.abspath(sys.argv[0]))
cap = Capture()
start = cap.now

c2s = Ether(src=MAC_A, dst=MAC_B) / IP(src=HMI, dst=PLC)
s2c = Ether(src=MAC_B, dst=MAC_A) / IP(src=PLC, dst=HMI)
cport, cseq, sseq = 50200, 1000, 70000


def client(flags, payload=b""):
    global cseq
    p = c2s / TCP(sport=cport, dport=502, flags=flags, seq=cseq, ack=sseq)
    cap.add(p / Raw(payload) if payload else p)
    cseq += len(payload) + (1 if "S" in flags or "F" in flags else 0)


def server(flags, payload=b""):
    global sseq
    p = s2c / TCP(sport=502, dport=cport, flags=flags, seq=sseq, ack=cseq)
    cap.add(p / Raw(payload) if payload else p)
    sseq += len(payload) + (1 if "S" in flags or "F" in flags else 0)


def mbap(tid, pdu):
    return struct.pack("!HHHB", tid, 0, len(pdu) + 1, 1) + pdu


client("S")
server("SA")
client("A")
for poll in range(38):  # one every 240 s from 1 s to 8881 s
    cap.now = start + 240 * poll + 1
    tid = poll + 1
    if poll == 32:  # a write of holding register 40 at 7681 s
        request = mbap(tid, struct.pack("!BHH", 6, 40, 1234))
        response = request
    else:
        request = mbap(tid, struct.pack("!BHH", 3, 100, 2))
        response = mbap(tid, struct.pack("!BBHH", 3, 4, 200 + poll, 7))
    client("PA", request)
    server("PA", response)
    client("A")
cap.now = start + 9000
client("FA")
server("FA")
client("A")

# DNS, on the same clock: the same query from the same port at 10 s and at 410 s.
for at, qid in ((10, 0x1111), (410, 0x2222)):
    cap.now = start + at
    q = Ether(src=MAC_A, dst=MAC_B) / IP(src=CLIENT, dst=RESOLVER) / UDP(sport=53000, dport=53)
    a = Ether(src=MAC_B, dst=MAC_A) / IP(src=RESOLVER, dst=CLIENT) / UDP(sport=53, dport=53000)
    cap.add(q / DNS(id=qid, rd=1, qd=DNSQR(qname="historian.plant.example")))
    cap.add(a / DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname="historian.plant.example"),
                    an=DNSRR(rrname="historian.plant.example", ttl=300, rdata="192.0.2.60")))

cap.packets.sort(key=lambda p: p.time)
cap.write(os.path.join(here, "input.pcap"))
print(f"{os.path.join(here, 'input.pcap')}: {len(cap.packets)} packets")
