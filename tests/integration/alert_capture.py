"""Writes a capture and a rule file with which the agent raises exactly FLOWS x RULES alerts:
FLOWS UDP datagrams, each its own flow (the engine reports a rule once per flow), each
carrying a marker that every one of RULES YARA rules matches. Used by the fault test.

    /usr/bin/python3 tests/integration/alert_capture.py OUT.pcap FLOWS RULE.yar RULES
"""
import struct
import sys

MARKER = b"SENNINGEN-FAULT-MARKER"
RULE = """rule senningen_fault_marker_%03d
{
    meta:
        severity = 3
        category = "Fault test"
    strings:
        $m = "SENNINGEN-FAULT-MARKER"
    condition:
        $m
}
"""


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(n):
    payload = MARKER + b" %08d " % n + b"x" * 16
    src_port = 1024 + n % 60000
    udp = struct.pack("!HHHH", src_port, 9999, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, n & 0xFFFF, 0, 64, 17, 0,
                     bytes([10, 1 + (n >> 16) % 200, (n >> 8) & 0xFF, n & 0xFF]),
                     bytes([10, 0, 0, 2]))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_capture(path, count):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        base = 1_800_000_000
        for n in range(count):
            data = frame(n)
            f.write(struct.pack("<IIII", base + n // 1000, (n % 1000) * 1000, len(data), len(data)))
            f.write(data)


def write_rules(path, count):
    with open(path, "w") as f:
        for k in range(count):
            f.write(RULE % k)


if __name__ == "__main__":
    write_capture(sys.argv[1], int(sys.argv[2]))
    write_rules(sys.argv[3], int(sys.argv[4]))
