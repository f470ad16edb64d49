#!/usr/bin/python3
"""Writes the seed corpora of the ICS analyzer fuzz targets (corpus/<proto>/). Each seed is
one control byte (chunk size, direction flipping, UDP) followed by well-formed PDUs, so that
the fuzzer starts from inputs that reach deep into each parser."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def crc(data):
    c = 0
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xA6BC if c & 1 else c >> 1
    return struct.pack("<H", ~c & 0xFFFF)


def dnp3(fc, objects=b"", seq=0):
    user = bytes([0xC0 | seq, 0xC0 | seq, fc]) + objects
    head = bytes([0x05, 0x64, 5 + len(user), 0xC4]) + struct.pack("<HH", 10, 1)
    out = head + crc(head)
    for i in range(0, len(user), 16):
        out += user[i:i + 16] + crc(user[i:i + 16])
    return out


def mbap(tid, unit, fc, body):
    return struct.pack(">HHHBB", tid, 0, 2 + len(body), unit, fc) + body


def dt(s7):
    return struct.pack(">BBH", 3, 0, 7 + len(s7)) + b"\x02\xf0\x80" + s7


def s7job(param):
    return struct.pack(">BBHHHH", 0x32, 1, 0, 1, len(param), 0) + param


def i104(type_id, cause, ca, ioa, value):
    asdu = bytes([type_id, 1, cause, 0]) + struct.pack("<H", ca) + struct.pack("<I", ioa)[:3] + value
    return bytes([0x68, 4 + len(asdu), 0, 0, 0, 0]) + asdu


def encap(cmd, session, data):
    return struct.pack("<HHII8sI", cmd, len(data), session, 0, b"\0" * 8, 0) + data


def rr(session, cip):
    return encap(0x6F, session, struct.pack("<IHHHHHH", 0, 0, 2, 0, 0, 0xB2, len(cip)) + cip)


SEEDS = {
    "modbus": {
        "write-multiple": mbap(1, 1, 16, bytes([0, 100, 0, 2, 4, 0, 1, 0, 2])),
        "read-and-exception": mbap(1, 1, 3, bytes([0, 0, 0, 10])) + mbap(1, 1, 0x83, b"\x02"),
        "diagnostics": mbap(9, 1, 8, bytes([0, 1, 0, 0])) + mbap(10, 1, 23, bytes([0, 1, 0, 1, 0, 2, 0, 1, 2, 0, 5])),
    },
    "dnp3": {
        "cold-restart": dnp3(13),
        "read-class": dnp3(1, bytes([60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6])),
        "direct-operate": dnp3(5, bytes([12, 1, 0x28, 1, 0, 5, 0, 3, 1, 0xE8, 3, 0, 0, 0, 0, 0, 0, 0])),
        "response": dnp3(129, bytes([0, 0, 30, 1, 0, 0, 1, 1, 0, 0, 0, 0, 2, 0, 0, 0])),
    },
    "s7comm": {
        "stop": bytes.fromhex("0300001611e00000000100c1020100c2020102c0010a") + dt(s7job(bytes([0x29, 0, 0, 0, 0, 0, 9]) + b"P_PROGRAM")),
        "download": dt(s7job(bytes([0x1B, 0, 1, 0, 0, 0, 0, 0, 9]) + b"_0800001P")),
        "read-var": dt(s7job(bytes([4, 1, 0x12, 10, 0x10, 2, 0, 4, 0, 1, 0x84, 0, 0, 0]))),
    },
    "iec104": {
        "command": bytes([0x68, 4, 7, 0, 0, 0]) + i104(45, 6, 3, 4501, b"\x01") + i104(1, 3, 3, 7, b"\x00"),
        "interrogation": i104(100, 6, 1, 0, b"\x14") + bytes([0x68, 4, 1, 0, 2, 0]),
    },
    "enip": {
        "stop": encap(0x65, 0, struct.pack("<HH", 1, 0)) + rr(0x1234, bytes([7, 2, 0x20, 0x8E, 0x24, 1])),
        "list-identity": encap(0x63, 0, b""),
        "unconnected-send": rr(1, bytes([0x52, 2, 0x20, 6, 0x24, 1, 0x0A, 0xF0, 9, 0, 0x10, 3, 0x20, 0x8B, 0x24, 1, 0x30, 6, 0x2A, 0, 1, 0, 1, 0])),
    },
}

for proto, seeds in SEEDS.items():
    d = os.path.join(HERE, "corpus", proto)
    os.makedirs(d, exist_ok=True)
    for name, body in seeds.items():
        for control, suffix in ((0x3F, ""), (0x40, "-split")):
            with open(os.path.join(d, name + suffix), "wb") as f:
                f.write(bytes([control]) + body)
    if proto == "dnp3":
        with open(os.path.join(d, "udp-cold-restart"), "wb") as f:
            f.write(bytes([0xBF]) + dnp3(13))
