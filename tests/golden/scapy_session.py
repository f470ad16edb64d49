"""What the scapy-based golden capture generators share: a clock that stamps each frame and a
whole TCP connection (handshake, exchanges cut into segments, FIN) with wrapping sequence
numbers. Import it from a make_input.py beside a case:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from scapy_session import Capture
"""
from scapy.all import IP, Ether, Raw, wrpcap
from scapy.all import TCP as ScapyTCP

# Where the golden captures made here start, unless a case says otherwise: fixed, so that each
# generator writes the same file on every run.
GOLDEN_START = 1768467600.0  # 2026-01-15T09:00:00Z

MAC_A = "02:00:00:00:00:01"
MAC_B = "02:00:00:00:00:02"


def _tcp(seq=0, ack=0, **kw):
    """scapy's TCP with sequence numbers taken modulo 2**32, so an ISN near the top wraps."""
    return ScapyTCP(seq=seq % 2**32, ack=ack % 2**32, **kw)


class Capture:
    """Frames in order, each stamped `step` seconds after the one before it."""

    def __init__(self, base_ts=GOLDEN_START):
        self.packets = []
        self.now = base_ts

    def pause(self, seconds):
        self.now += seconds

    def add(self, pkt, step=0.001):
        self.now += step
        pkt.time = self.now
        self.packets.append(pkt)

    def tcp_session(self, client, cport, server, sport, exchanges, client_isn, server_isn,
                    mss=1200, pause_after=0.0):
        """Handshake, then (direction, payload) exchanges ("c2s" or "s2c") cut into segments
        of at most `mss` bytes, each acknowledged, then FIN from both sides."""
        c2s = Ether(src=MAC_A, dst=MAC_B) / IP(src=client, dst=server)
        s2c = Ether(src=MAC_B, dst=MAC_A) / IP(src=server, dst=client)
        cseq, sseq = client_isn, server_isn
        self.add(c2s / _tcp(sport=cport, dport=sport, flags="S", seq=cseq))
        self.add(s2c / _tcp(sport=sport, dport=cport, flags="SA", seq=sseq, ack=cseq + 1))
        cseq += 1
        sseq += 1
        self.add(c2s / _tcp(sport=cport, dport=sport, flags="A", seq=cseq, ack=sseq))
        for direction, payload in exchanges:
            for off in range(0, len(payload), mss):
                chunk = payload[off:off + mss]
                if direction == "c2s":
                    self.add(c2s / _tcp(sport=cport, dport=sport, flags="PA", seq=cseq,
                                        ack=sseq) / Raw(chunk))
                    cseq += len(chunk)
                    self.add(s2c / _tcp(sport=sport, dport=cport, flags="A", seq=sseq, ack=cseq))
                else:
                    self.add(s2c / _tcp(sport=sport, dport=cport, flags="PA", seq=sseq,
                                        ack=cseq) / Raw(chunk))
                    sseq += len(chunk)
                    self.add(c2s / _tcp(sport=cport, dport=sport, flags="A", seq=cseq, ack=sseq))
        self.add(c2s / _tcp(sport=cport, dport=sport, flags="FA", seq=cseq, ack=sseq))
        self.add(s2c / _tcp(sport=sport, dport=cport, flags="FA", seq=sseq, ack=cseq + 1))
        self.add(c2s / _tcp(sport=cport, dport=sport, flags="A", seq=cseq + 1, ack=sseq + 1))
        self.pause(pause_after)

    def write(self, path):
        wrpcap(path, self.packets)
