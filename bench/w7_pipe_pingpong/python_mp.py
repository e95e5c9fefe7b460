"""W7 in Python: multiprocessing.Pipe ping-pong of a small int.

Prints  RESULT roundtrip_us <mean microseconds per round trip>.
"""
import argparse
import multiprocessing as mp
import time


def parse_args():
    """--quick (smaller sizes) and --processes N (pool size, default 2)."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--processes", type=int, default=2)
    return p.parse_known_args()[0]


def result(metric, value, unit):
    """One machine-readable line for bench/run.py."""
    print(f"RESULT {metric} {value:.9g} {unit}", flush=True)


def echo(conn):
    while True:
        v = conn.recv()
        if v < 0:
            return
        conn.send(v)


if __name__ == "__main__":
    args = parse_args()
    warmup, timed = (200, 1000) if args.quick else (1000, 10000)
    mine, theirs = mp.Pipe()
    child = mp.Process(target=echo, args=(theirs,))
    child.start()
    theirs.close()
    t0 = 0.0
    for i in range(warmup + timed):
        if i == warmup:
            t0 = time.perf_counter()
        mine.send(i)
        assert mine.recv() == i
    t1 = time.perf_counter()
    mine.send(-1)
    child.join()
    result("roundtrip_us", (t1 - t0) / timed * 1e6, "us")
