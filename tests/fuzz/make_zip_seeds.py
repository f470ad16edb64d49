#!/usr/bin/python3
"""Writes the seed corpus of the ZIP reader's fuzz target (corpus/zip/): archives made by
Python's zipfile (stored and deflated members, data descriptors, a ZIP64 member), each after
the mode byte fuzz_zip.cc reads first (how the bytes are cut, whether a hole comes).
  /usr/bin/python3 make_zip_seeds.py
"""
import io
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(sys.argv[0]))
OUT = os.path.join(HERE, "corpus", "zip")


class Unseekable(io.RawIOBase):
    """A stream zipfile cannot seek back in: it writes data descriptors (flag bit 3)."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


def archive(members, method=zipfile.ZIP_DEFLATED, stream=False, force_zip64=False):
    target = Unseekable() if stream else io.BytesIO()
    with zipfile.ZipFile(target, "w", compression=method) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            with z.open(info, "w", force_zip64=force_zip64) as f:
                f.write(data)
    return bytes(target.buf if stream else target.getvalue())


os.makedirs(OUT, exist_ok=True)
text = b"".join(b"line %d of a plant log\n" % i for i in range(200))
seeds = {
    "stored": (0x05, archive([("a.txt", b"hello"), ("b.bin", bytes(range(256)))],
                             zipfile.ZIP_STORED)),
    "deflated": (0x20, archive([("log.txt", text), ("MZ.exe", b"MZ" + bytes(300))])),
    "descriptor": (0x3f, archive([("streamed.txt", text)], stream=True)),
    "zip64": (0x10, archive([("big.txt", text)], force_zip64=True)),
    "hole": (0x47, archive([("cut.txt", text * 3)])),
}
for name, (mode, data) in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([mode]) + data)
print(f"wrote {len(seeds)} seeds to {OUT}")
