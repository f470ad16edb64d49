#!/usr/bin/env python3
"""Writes the seed corpus of the decode fuzz target (tests/fuzz/corpus/decode/).

Each seed is built byte by byte so that it reaches a different decoder path: link types, VLAN
stacks, IPv6 extension headers, fragments, a DNS query with a compression pointer, and a
reassembly script (flags, selector, seq delta, length, bytes per record; see fuzz_decode.cc).
Run it from anywhere; it overwrites the seeds it owns and leaves other files (crash
reproducers) alone.
"""
import pathlib
import struct

OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "decode"

CLIENT4 = bytes([192, 168, 1, 10])
SERVER4 = bytes([10, 0, 0, 1])
CLIENT6 = bytes.fromhex("20010db8000000000000000000000010")
SERVER6 = bytes.fromhex("20010db8000000000000000000000001")


def tcp(sport, dport, seq, flags, payload=b""):
    return struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport, dport, payload):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(proto, l4, frag=0, options=b""):
    ihl = 5 + len(options) // 4
    header = struct.pack(">BBHHHBBH", 0x40 | ihl, 0, 4 * ihl + len(l4), 0x1234, frag, 64,
                         proto, 0)
    return header + CLIENT4 + SERVER4 + options + l4


def ipv6(next_header, rest):
    return struct.pack(">IHBB", 0x60000000, len(rest), next_header, 64) + CLIENT6 + SERVER6 + rest


def ether(ethertype, payload, tags=()):
    out = bytes(range(12))
    for tpid, vid in tags:
        out += struct.pack(">HH", tpid, vid)
    return out + struct.pack(">H", ethertype) + payload


def dns_query():
    header = struct.pack(">HHHHHH", 0xbeef, 0x0100, 2, 0, 0, 0)
    first = b"\x03www\x07Example\x03com\x00" + struct.pack(">HH", 1, 1)
    second = b"\x04mail\xc0\x10" + struct.pack(">HH", 15, 1)  # pointer to "example.com"
    return header + first + second


def script(*records):
    out = b""
    for flags, selector, delta, payload in records:
        out += struct.pack(">BBhB", flags, selector, delta, len(payload)) + payload
    return out


SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08

SEEDS = {
    "eth-ipv4-tcp": ether(0x0800, ipv4(6, tcp(40000, 80, 1, PSH | ACK, b"GET / HTTP/1.1\r\n\r\n"))),
    "eth-qinq-ipv6-udp-dns": ether(0x86dd, ipv6(17, udp(5353, 53, dns_query())),
                                   tags=((0x88a8, 10), (0x8100, 20))),
    "eth-ipv4-options-fragment": ether(0x0800, ipv4(17, udp(1, 2, b"x" * 16), frag=0x2000,
                                                    options=b"\x01" * 8)),
    "ipv6-ext-chain": ipv6(0, bytes([43, 0]) + b"\x00" * 6 + bytes([44, 0]) + b"\x00" * 6
                           + bytes([6, 0, 0, 1]) + b"\xde\xad\xbe\xef"
                           + tcp(1, 2, 3, ACK, b"frag")),
    "sll-ipv4-udp": struct.pack(">HHH", 0, 1, 6) + b"\x10\x11\x12\x13\x14\x15\x00\x00"
                    + struct.pack(">H", 0x0800) + ipv4(17, udp(53, 53, dns_query())),
    "null-ipv4-tcp": struct.pack("<I", 2) + ipv4(6, tcp(1, 2, 3, SYN)),
    "dns-query": dns_query(),
    "reassembly-script": script(
        (SYN, 0x00, 0, b""),
        (SYN | ACK, 0x04, 0x100, b""),
        (ACK, 0x08, 0x11, b"world"),          # out of order
        (ACK, 0x08, 0x01, b"hello, "),        # fills up to the wrap
        (ACK, 0x08, 0x01, b"HELLO"),          # retransmission with other bytes
        (ACK, 0x09, 0x0c, b"overlap!"),       # overlap, second flow
        (FIN | ACK, 0x0c, 0x101, b"bye"),
        (FIN | ACK, 0x00, 0x120, b""),
        (RST, 0x7b, 0x00, b""),               # time jumps: expiry
        (0, 0x83, 0x00, b"udp datagram"),     # UDP flow
    ),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS.items():
        (OUT / name).write_bytes(data)
    print(f"wrote {len(SEEDS)} seeds to {OUT}")


if __name__ == "__main__":
    main()
