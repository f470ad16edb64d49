#!/usr/bin/python3
"""Writes input.pcap, the capture of Senningen's demo and of its first golden test.

Everything in it is made up here, on documentation address ranges (RFC 5737) and the
reserved .example domain (RFC 2606):
  1. an engineering workstation asks DNS for update.scada-vendor.example (listed in the demo
     intel file);
  2. it downloads /firmware/plc-update.bin over HTTP from 203.0.113.66 (listed too); the body
     carries the marker that the demo YARA rule looks for;
  3. an HMI writes a holding register and then several registers of a PLC over Modbus/TCP.
Time stamps are fixed so that the file is the same on every run:
  /usr/bin/python3 make_input.py  (needs Debian's python3-scapy)
"""
import os
import sys

from scapy.all import DNS, DNSQR, DNSRR, IP, UDP, Ether, Raw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from scapy_session import MAC_A, MAC_B, Capture  # noqa: E402

WORKSTATION = "192.0.2.20"
RESOLVER = "192.0.2.1"
BAD_SERVER = "203.0.113.66"
HMI = "192.0.2.30"
PLC = "192.0.2.40"

cap = Capture()
add = cap.add


def tcp_session(*args, **kw):
    cap.tcp_session(*args, pause_after=0.0, **kw)



# 1. DNS lookup of a listed domain.
name = "update.scada-vendor.example"
add(Ether(src=MAC_A, dst=MAC_B) / IP(src=WORKSTATION, dst=RESOLVER) /
    UDP(sport=53001, dport=53) / DNS(id=0x5e11, rd=1, qd=DNSQR(qname=name, qtype="A")))
add(Ether(src=MAC_B, dst=MAC_A) / IP(src=RESOLVER, dst=WORKSTATION) /
    UDP(sport=53, dport=53001) /
    DNS(id=0x5e11, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype="A"),
        an=DNSRR(rrname=name, type="A", ttl=300, rdata=BAD_SERVER)), step=0.02)

# 2. HTTP download whose body carries the demo implant marker.
body = (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56 +
        b"SENNINGEN-DEMO-IMPLANT v1: harmless test content, not malware\n" +
        bytes(range(256)) * 12)
request = (b"GET /firmware/plc-update.bin HTTP/1.1\r\n"
           b"Host: update.scada-vendor.example\r\n"
           b"User-Agent: Wget/1.21.3\r\nAccept: */*\r\n\r\n")
response = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
cap.pause(0.05)
tcp_session(WORKSTATION, 49200, BAD_SERVER, 80, [("c2s", request), ("s2c", response)],
            client_isn=1000, server_isn=700000)

# 3. Modbus/TCP: write single register (fc 6) and write multiple registers (fc 16).
def mbap(tid, unit, pdu):
    return tid.to_bytes(2, "big") + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu

write_single = mbap(1, 1, bytes([0x06]) + (40).to_bytes(2, "big") + (1500).to_bytes(2, "big"))
write_single_reply = write_single
values = [100, 200, 300]
write_multi = mbap(2, 1, bytes([0x10]) + (100).to_bytes(2, "big") + len(values).to_bytes(2, "big") +
                   bytes([2 * len(values)]) + b"".join(v.to_bytes(2, "big") for v in values))
write_multi_reply = mbap(2, 1, bytes([0x10]) + (100).to_bytes(2, "big") + len(values).to_bytes(2, "big"))
cap.pause(0.5)
tcp_session(HMI, 50200, PLC, 502,
            [("c2s", write_single), ("s2c", write_single_reply),
             ("c2s", write_multi), ("s2c", write_multi_reply)],
            client_isn=4294967280, server_isn=12345)  # the HMI's sequence numbers wrap

out = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "input.pcap")
cap.write(out)
print(f"wrote {len(cap.packets)} packets to {out}")
