#!/usr/bin/python3
"""Writes input.pcap for the ics-policy golden case with struct only (no scapy): one TCP
connection (handshake, data, FIN) or UDP exchange per protocol, on documentation addresses.
  1. Modbus/TCP: the allowed master 192.0.2.10 writes a register (no alert); then 192.0.2.99
     writes several registers (alert: not an allowed master);
  2. S7comm on port 102: COTP set-up, PLC stop, then a block download of OB1;
  3. DNP3 over UDP on port 20000: a cold restart; DNP3 over TCP on port 44818 (the EtherNet/IP
     port: detection is by content) with a warm restart;
  4. IEC 60870-5-104: STARTDT, then a single command (C_SC_NA_1, activation) from 192.0.2.99;
  5. EtherNet/IP: RegisterSession and a CIP Stop to class 0x8E.
Run: /usr/bin/python3 make_input.py
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz"))
from make_ics_seeds import dnp3, dt, encap, i104, mbap, rr, s7job  # noqa: E402

BASE_TS = 1768467600  # 2026-01-15T09:00:00Z
records = []
clock = [0]


def ip_checksum(header):
    s = sum(struct.unpack("!10H", header))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                         bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
    return header + payload


def frame(src, dst, proto, l4):
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    clock[0] += 1000  # 1 ms apart
    records.append((clock[0], eth + ipv4(src, dst, proto, l4)))


def tcp(src, sport, dst, dport, seq, ack, flags, payload=b""):
    frame(src, dst, 6, struct.pack("!HHIIBBHHH", sport, dport, seq % 2**32, ack % 2**32, 0x50,
                                   flags, 65535, 0, 0) + payload)


def udp(src, sport, dst, dport, payload):
    frame(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)


def session(client, cport, server, sport, exchanges):
    c, s = 1000, 5000
    tcp(client, cport, server, sport, c, 0, 0x02)
    tcp(server, sport, client, cport, s, c + 1, 0x12)
    c += 1
    s += 1
    tcp(client, cport, server, sport, c, s, 0x10)
    for direction, data in exchanges:
        if direction == "c2s":
            tcp(client, cport, server, sport, c, s, 0x18, data)
            c += len(data)
        else:
            tcp(server, sport, client, cport, s, c, 0x18, data)
            s += len(data)
    tcp(client, cport, server, sport, c, s, 0x11)
    tcp(server, sport, client, cport, s, c + 1, 0x11)
    tcp(client, cport, server, sport, c + 1, s + 1, 0x10)


PLC = "192.0.2.40"
session("192.0.2.10", 40001, PLC, 502, [("c2s", mbap(1, 1, 6, bytes([0, 7, 0, 1]))),
                                       ("s2c", mbap(1, 1, 6, bytes([0, 7, 0, 1])))])
session("192.0.2.99", 40002, PLC, 502, [
    ("c2s", mbap(1, 1, 16, bytes([0, 100, 0, 2, 4, 0, 1, 0, 2]))),
    ("s2c", mbap(1, 1, 16, bytes([0, 100, 0, 2]))),
    ("c2s", mbap(2, 1, 3, bytes([0, 100, 0, 2]))),
    ("s2c", mbap(2, 1, 0x83, b"\x02"))])
session("192.0.2.99", 40003, PLC, 102, [
    ("c2s", bytes.fromhex("0300001611e00000000100c1020100c2020102c0010a")),
    ("s2c", bytes.fromhex("0300001611d00000000100c1020100c2020102c0010a")),
    ("c2s", dt(s7job(bytes([0x29, 0, 0, 0, 0, 0, 9]) + b"P_PROGRAM"))),
    ("c2s", dt(s7job(bytes([0x1B, 0, 1, 0, 0, 0, 0, 0, 9]) + b"_0800001P")))])
udp("192.0.2.99", 40004, "192.0.2.50", 20000, dnp3(13))
session("192.0.2.99", 40005, "192.0.2.50", 44818, [("c2s", dnp3(14))])
session("192.0.2.99", 40006, "192.0.2.60", 2404, [
    ("c2s", bytes([0x68, 4, 7, 0, 0, 0])), ("s2c", bytes([0x68, 4, 0x0B, 0, 0, 0])),
    ("c2s", i104(45, 6, 3, 4501, b"\x01"))])
session("192.0.2.99", 40007, "192.0.2.70", 44818, [
    ("c2s", encap(0x65, 0, struct.pack("<HH", 1, 0))),
    ("s2c", encap(0x65, 0x1234, struct.pack("<HH", 1, 0))),
    ("c2s", rr(0x1234, bytes([7, 2, 0x20, 0x8E, 0x24, 1])))])

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "input.pcap"), "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for us, data in records:
        f.write(struct.pack("<IIII", BASE_TS + us // 1000000, us % 1000000, len(data), len(data)))
        f.write(data)
