#!/usr/bin/python3
"""Writes input.pcap and intel.dat for the http-compressed golden case: what HTTP carries
compressed, inspected as it inflates. Documentation addresses (RFC 5737) and .example names
throughout. One keep-alive connection:
  1. tools.zip: readme.txt (stored; its MD5, computed here, is in intel.dat), bin/dropper.exe
     (deflated; its name is in intel.dat, and it carries the YARA marker, which the archive's
     compressed bytes do not show), inner.zip (a member that is itself an archive: reported,
     not opened), and secret.doc (flagged encrypted: skipped, a weird);
  2. bomb.zip: one member of 80 MiB of zeros, some 80 KB deflated: cut at the 64 MiB limit
     (a zip_limit weird, the member incomplete: no digests);
  3. a page sent with Content-Encoding: gzip, chunked: its file is the page (the YARA marker,
     the length in the http record and the MD5 in intel.dat are the inflated page's);
  4. a script sent with Content-Encoding: deflate (zlib): its file is the script.
ZIP members are files of their own (source ZIP, parent_fuid the archive), as Zeek's ZIP
analyzer has them; encoded bodies are inflated as Zeek and Suricata inflate them.
Time stamps are fixed so that the files are the same on every run:
  /usr/bin/python3 make_input.py  (needs Debian's python3-scapy)
"""
import hashlib
import io
import os
import sys
import zipfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from scapy_session import Capture  # noqa: E402

CLIENT = "192.0.2.60"
SERVER = "203.0.113.70"
here = os.path.dirname(os.path.abspath(sys.argv[0]))


def archive(members):
    """MEMBERS: (name, bytes, method). Fixed dates: the same bytes each run."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, method in members:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 15, 9, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return buf.getvalue()


readme = b"Plant tools, build 2026-01. Run setup on the engineering workstation only.\n"
dropper = (b"MZ" + bytes(126) + b"This program cannot be run in DOS mode.\n" +
           b"ZIP-MEMBER-IMPLANT-MARKER" + bytes(range(256)) * 8)
inner = archive([("nested.txt", b"not opened: one level, as Zeek", zipfile.ZIP_DEFLATED)])
tools = archive([("readme.txt", readme, zipfile.ZIP_STORED),
                 ("bin/dropper.exe", dropper, zipfile.ZIP_DEFLATED),
                 ("inner.zip", inner, zipfile.ZIP_STORED),
                 ("secret.doc", b"pretend ciphertext", zipfile.ZIP_STORED)])
# zipfile clears the flag bits it does not implement: the encrypted flag is set in the bytes.
secret = zipfile.ZipFile(io.BytesIO(tools)).getinfo("secret.doc").header_offset
tools = tools[:secret + 6] + bytes([tools[secret + 6] | 0x1]) + tools[secret + 7:]
bomb = archive([("zeros.bin", bytes(80 << 20), zipfile.ZIP_DEFLATED)])
assert b"ZIP-MEMBER-IMPLANT-MARKER" not in tools  # only the inflated member shows it


def exchange(uri, body):
    request = (f"GET {uri} HTTP/1.1\r\nHost: downloads.plant-vendor.example\r\n"
               "User-Agent: plant-updater/2.1\r\n\r\n").encode()
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return [("c2s", request), ("s2c", response)]


page = (b"<html><head><title>Plant portal</title></head><body>" +
        b"".join(b"<p>shift %d: all pumps nominal</p>" % i for i in range(300)) +
        b"<script>var s = 'ENCODED-PAGE-MARKER';</script></body></html>")
gz = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip wrapper; no file name or time in it
page_gzip = gz.compress(page) + gz.flush()
script = b"function poll() { fetch('/api/pumps'); }\n" * 100
script_deflate = zlib.compress(script, 6)
assert b"ENCODED-PAGE-MARKER" not in page_gzip


def encoded(uri, body, encoding, content_type, chunk=None):
    request = (f"GET {uri} HTTP/1.1\r\nHost: portal.plant-vendor.example\r\n"
               "User-Agent: Mozilla/5.0\r\nAccept-Encoding: gzip, deflate\r\n\r\n").encode()
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Encoding: {encoding}\r\n").encode()
    if chunk is None:
        response = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    else:
        response = head + b"Transfer-Encoding: chunked\r\n\r\n"
        for at in range(0, len(body), chunk):
            part = body[at:at + chunk]
            response += b"%x\r\n" % len(part) + part + b"\r\n"
        response += b"0\r\n\r\n"
    return [("c2s", request), ("s2c", response)]


cap = Capture()
cap.tcp_session(CLIENT, 49600, SERVER, 80,
                exchange("/tools.zip", tools) + exchange("/bomb.zip", bomb) +
                encoded("/portal/index.html", page_gzip, "gzip", "text/html", chunk=500) +
                encoded("/portal/app.js", script_deflate, "deflate", "application/javascript"),
                client_isn=10000, server_isn=20000, mss=1400)
cap.write(os.path.join(here, "input.pcap"))
with open(os.path.join(here, "intel.dat"), "w") as f:
    f.write("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n")
    f.write(f"{hashlib.md5(readme).hexdigest()}\tIntel::FILE_HASH\tgolden\t"
            "a member's MD5, computed here\n")
    f.write("dropper.exe\tIntel::FILE_NAME\tgolden\ta member's name\n")
    f.write("nested.txt\tIntel::FILE_NAME\tgolden\tinside a member archive: never seen\n")
    f.write(f"{hashlib.md5(page).hexdigest()}\tIntel::FILE_HASH\tgolden\t"
            "the inflated page's MD5\n")
print(f"wrote {len(cap.packets)} packets and intel.dat in {here}; bomb.zip {len(bomb)} bytes")
