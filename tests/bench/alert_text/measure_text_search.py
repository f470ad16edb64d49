#!/usr/bin/python3
"""Free-text search over alerts: the trigram index the SQLite store uses (FTS5, trigram
tokenizer) and a plain LIKE walk along the time index, each alone and combined as the store
combines them (taking turns, with time slices from 5 ms doubling until one finishes), on N
synthetic alerts (default 1,000,000).
Prints the median time of each query shape and the ratios against the combination.

    /usr/bin/python3 tests/bench/alert_text/measure_text_search.py [N]

The shapes are the API's: newest 100 matches of a rare word (one alert in 100,000), of a word in
1 % of the alerts and of a word in half of them. Run on Debian 12's SQLite (3.40) through
Python's sqlite3 module, in a temporary file.
"""
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
WORDS = ["modbus", "write", "coil", "policy", "dns", "tunnel", "exfil", "beacon", "smb", "login"]


def text_of(i, rng):
    words = rng.sample(WORDS, 3)
    if i % 2 == 0:
        words.append("common-marker")
    if i % 100 == 0:
        words.append("percent-marker")
    if i % 100_000 == 7:
        words.append("rare-needle-xyz")
    return ("senningen test " + " ".join(words) + "\n" + "%08x" % rng.getrandbits(32)).lower()


def median_ms(db, sql, arg, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        rows = db.execute(sql, (arg,)).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), len(rows)


def main():
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(os.path.join(tmp, "bench.db"))
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE alerts (ts INTEGER NOT NULL, text TEXT NOT NULL)")
        db.execute("CREATE VIRTUAL TABLE alerts_text USING fts5(text, content='',"
                   " tokenize='trigram case_sensitive 1')")
        start = time.perf_counter()
        batch = 50_000
        for base in range(0, N, batch):
            rows = [(base + i, text_of(base + i, rng)) for i in range(min(batch, N - base))]
            db.executemany("INSERT INTO alerts (ts, text) VALUES (?, ?)", rows)
        db.execute("CREATE INDEX alerts_ts ON alerts (ts)")
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        db.execute("INSERT INTO alerts_text (rowid, text) SELECT rowid, text FROM alerts")
        db.commit()
        index_s = time.perf_counter() - start
        size = os.path.getsize(os.path.join(tmp, "bench.db"))
        print(f"{N} alerts: table and time index {load_s:.1f} s, trigram index {index_s:.1f} s, "
              f"file {size / 1e6:.0f} MB; load {os.getloadavg()[0]:.1f}")
        like = "SELECT rowid FROM alerts WHERE text LIKE ? ORDER BY ts DESC LIMIT 100"
        fts = ("SELECT rowid FROM alerts WHERE rowid IN (SELECT rowid FROM alerts_text"
               " WHERE alerts_text MATCH ?) ORDER BY ts DESC LIMIT 100")
        def attempt(sql, arg, seconds):
            deadline = time.perf_counter() + seconds
            db.set_progress_handler(lambda: int(time.perf_counter() > deadline), 10000)
            try:
                return db.execute(sql, (arg,)).fetchall()
            except sqlite3.OperationalError:
                return None
            finally:
                db.set_progress_handler(None, 0)

        def hybrid(word):
            # What the store does: the LIKE walk and the index take turns with doubling time
            # slices (5 ms first) until one finishes; past a second the index finishes.
            slice_s = 0.005
            while True:
                rows = attempt(like, f"%{word}%", slice_s)
                if rows is not None:
                    return rows
                if slice_s >= 1.0:
                    return db.execute(fts, (f'"{word}"',)).fetchall()
                rows = attempt(fts, f'"{word}"', slice_s)
                if rows is not None:
                    return rows
                slice_s *= 2

        print(f"{'query':18} {'LIKE ms':>8} {'FTS5 ms':>8} {'hybrid ms':>10} {'LIKE/hybrid':>12}"
              f" {'FTS5/hybrid':>12} rows")
        for word in ["rare-needle-xyz", "percent-marker", "common-marker"]:
            like_ms, like_rows = median_ms(db, like, f"%{word}%")
            fts_ms, fts_rows = median_ms(db, fts, f'"{word}"')
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                rows = hybrid(word)
                times.append((time.perf_counter() - t0) * 1000)
            hybrid_ms = statistics.median(times)
            assert like_rows == fts_rows == len(rows), (word, like_rows, fts_rows, len(rows))
            print(f"{word:18} {like_ms:8.1f} {fts_ms:8.1f} {hybrid_ms:10.1f}"
                  f" {like_ms / hybrid_ms:12.2f} {fts_ms / hybrid_ms:12.2f} {fts_rows}")

main()
