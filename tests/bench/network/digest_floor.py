#!/usr/bin/python3
"""MD5, SHA-1 and SHA-256 of LENGTH bytes of FILE from byte START, in one pass, with Python's
hashlib (OpenSSL's libcrypto, as the agent's digests): the network benchmark's floor for what
the agent's default digests of every HTTP body cost. Prints the three digests.

  digest_floor.py FILE START LENGTH
"""
import hashlib
import sys


def main():
    path, start, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    digests = [hashlib.md5(), hashlib.sha1(), hashlib.sha256()]
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(length, 1 << 20))
            if not chunk:
                sys.exit(f"{path}: ends {length} bytes early")
            for d in digests:
                d.update(chunk)
            length -= len(chunk)
    print(" ".join(d.hexdigest() for d in digests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
