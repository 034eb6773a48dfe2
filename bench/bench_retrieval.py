#!/usr/bin/python3
"""Retrieval speed, in one run: what umgclipindex adds per frame against the same pipeline
without it (SQLite, SQLite with thumbnails, PostgreSQL), and the search latency of
`umgclip search` over 10^4, 10^5 and 10^6 stored vectors (synthetic, L2-normalised, 128-wide
like the shipped model's) for SQLite's exact search and for pgvector's HNSW index, with the
index's recall@10 against pgvector's exact scan. PostgreSQL 17 runs in the Debian 13 chroot
(tools/debian13.sh); without it, its rows are left out, saying why.

usage: bench_retrieval.py --umgclip build/tools/umgclip [--sizes 10000,100000,1000000]
                          [--frames 300] [--queries 20]
"""
import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import json

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(TOP, "tests"))
from test_retrieval import (Postgres, free_port, in_postgres_host,  # noqa: E402
                            postgres_available)

MODEL = os.path.abspath(os.path.join(TOP, "models", "umgclip-tiny"))
DIM = 128


def pipeline_seconds(frames, tail):
    command = ("gst-launch-1.0 -q videotestsrc num-buffers=%d pattern=ball ! "
               "video/x-raw,width=320,height=240,framerate=30/1 ! "
               "umgclipenc model=%s device=cpu ! %s ! fakesink" % (frames, MODEL, tail))
    start = time.monotonic()
    subprocess.run(command, shell=True, check=True)
    return time.monotonic() - start


def indexing(args, tmp, pg_location):
    tails = [("without umgclipindex", "identity")]
    tails.append(("umgclipindex, SQLite", "umgclipindex model=%s location=%s/a.sqlite"
                  % (MODEL, tmp)))
    tails.append(("umgclipindex, SQLite + thumbnails",
                  "umgclipindex model=%s location=%s/b.sqlite thumbnails=true" % (MODEL, tmp)))
    if pg_location:
        tails.append(("umgclipindex, PostgreSQL", "umgclipindex model=%s location=%s"
                      % (MODEL, pg_location)))
    times = {}
    for _ in range(3):  # interleaved, best of three: the machines' speed drifts
        for name, tail in tails:
            times.setdefault(name, []).append(pipeline_seconds(args.frames, tail))
    base = min(times["without umgclipindex"])
    print("\n## Indexing overhead (%d frames of 320x240, shipped model, CPU)\n" % args.frames)
    print("| pipeline | ms/frame | added ms/frame | ratio to without |")
    print("|---|---:|---:|---:|")
    for name, _ in tails:
        best = min(times[name])
        print("| %s | %.2f | %.2f | %.2fx |" % (name, 1000 * best / args.frames,
                                               1000 * (best - base) / args.frames, best / base))


def unit_vectors(rng, n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def make_sqlite(path, n, rng):
    """An index as umgclipindex writes it: the model first (one real frame), then n rows."""
    subprocess.run("gst-launch-1.0 -q videotestsrc num-buffers=1 ! video/x-raw,width=64,height=64"
                   " ! umgclipindex model=%s location=%s ! fakesink" % (MODEL, path),
                   shell=True, check=True)
    connection = sqlite3.connect(path)
    block = 50000
    for first in range(0, n, block):
        v = unit_vectors(rng, min(block, n - first))
        connection.executemany(
            "INSERT INTO frames (stream, pts, wall, embedding) VALUES ('synthetic', ?, ?, ?)",
            ((first + i, first + i, v[i].tobytes()) for i in range(len(v))))
        connection.commit()
    connection.close()


def psql(debian13, port, sql):
    result = subprocess.run(
        in_postgres_host(debian13, ["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h",
                                    "127.0.0.1", "-p", str(port), "-U", "postgres", "postgres",
                                    "-c", sql]), capture_output=True, text=True, check=True)
    return result.stdout


def fill_postgres(debian13, server, n):
    subprocess.run("gst-launch-1.0 -q videotestsrc num-buffers=1 ! video/x-raw,width=64,height=64"
                   " ! umgclipindex model=%s location=%s ! fakesink" % (MODEL, server.location),
                   shell=True, check=True)
    start = time.monotonic()
    psql(debian13, server.port,
         "DROP INDEX umgclip_frames_embedding; "
         "INSERT INTO umgclip_frames (stream, pts, wall, embedding) "
         "SELECT 'synthetic', i, i, l2_normalize(ARRAY(SELECT random() - 0.5 + 0 * i "
         "FROM generate_series(1, %d))::vector) FROM generate_series(1, %d) i" % (DIM, n - 1))
    filled = time.monotonic() - start
    start = time.monotonic()
    psql(debian13, server.port,
         "SET maintenance_work_mem = '4GB'; SET max_parallel_maintenance_workers = 2; "
         "CREATE INDEX umgclip_frames_embedding ON umgclip_frames "
         "USING hnsw (embedding vector_cosine_ops); ANALYZE umgclip_frames")
    return filled, time.monotonic() - start


def search_ms(args, location, queries):
    took = []
    for q in queries:
        # the stored vectors are frames only: time the frame search alone
        result = subprocess.run([args.umgclip, "search", "--db", location, q, "--top-k", "10",
                                 "--frames-only", "--device", "cpu"], capture_output=True,
                                text=True, check=True)
        took.append(json.loads(result.stdout)["took_ms"])
    return statistics.median(took)


def recall(debian13, port, n_queries, ef_search):
    """HNSW's top 10 at ef_search against the exact top 10 (index scans off), for stored
    vectors as queries."""
    found = total = 0
    ids = psql(debian13, port, "SELECT id FROM umgclip_frames ORDER BY random() LIMIT %d"
               % n_queries).split()
    for qid in ids:
        q = "(SELECT embedding FROM umgclip_frames WHERE id = %s)" % qid
        sql = "SELECT id FROM umgclip_frames ORDER BY embedding <=> %s LIMIT 10" % q
        approx = set(psql(debian13, port, "SET hnsw.ef_search = %d; " % ef_search + sql).split())
        exact = set(psql(debian13, port, "SET enable_indexscan = off; " + sql).split())
        found += len(approx & exact)
        total += len(exact)
    return found / total if total else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--umgclip", required=True)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--debian13", default=os.path.join(TOP, "tools", "debian13.sh"))
    args = parser.parse_args()
    debian13 = args.debian13
    why = postgres_available(argparse.Namespace(debian13=debian13))
    rng = np.random.default_rng(0)
    words = ["red", "green", "blue", "yellow", "white", "black", "purple", "orange"]
    shapes = ["circle", "square", "triangle", "cross", "ring", "star"]
    queries = ["a %s %s" % (words[i % 8], shapes[i % 6]) for i in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if why is None:
            server = Postgres(debian13, free_port())
            if not server.wait():
                why = "PostgreSQL did not start: " + server.output()
                server.stop()
                server = None
        if why is not None:
            print("PostgreSQL left out: %s" % why)
        try:
            indexing(args, tmp, server.location if server else None)
            print("\n## Search latency (top 10, median of %d queries; `took_ms`: the store's "
                  "search alone)\n" % len(queries))
            print("| stored vectors | SQLite exact ms | pgvector HNSW ms | SQLite / pgvector "
                  "| recall@10, ef_search 200 (ours) | recall@10, ef_search 40 (pgvector's "
                  "default) | PostgreSQL fill s | HNSW build s |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|")
            for n in [int(s) for s in args.sizes.split(",")]:
                path = os.path.join(tmp, "synthetic-%d.sqlite" % n)
                make_sqlite(path, n, rng)
                sqlite_ms = search_ms(args, path, queries)
                os.unlink(path)
                row = "| %d | %.1f |" % (n, sqlite_ms)
                if server is not None:
                    psql(debian13, server.port, "DROP TABLE IF EXISTS umgclip_regions, "
                         "umgclip_frames, umgclip_meta")
                    filled, built = fill_postgres(debian13, server, n)
                    pg_ms = search_ms(args, server.location, queries)
                    ours = recall(debian13, server.port, 10, 200)
                    default = recall(debian13, server.port, 10, 40)
                    row += " %.1f | %.1fx | %.2f | %.2f | %.0f | %.0f |" % (
                        pg_ms, sqlite_ms / pg_ms, ours, default, filled, built)
                else:
                    row += " - | - | - | - | - | - |"
                print(row, flush=True)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
