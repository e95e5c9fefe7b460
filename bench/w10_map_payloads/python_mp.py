"""W10 in Python: Pool(2).map(len) over 32 payloads of 8 MiB (bytes).

Prints  RESULT gb_per_s <10^9 payload bytes per second>.
"""
import argparse
import multiprocessing as mp
import time

PAYLOAD = 8 << 20


def parse_args():
    """--quick (smaller sizes) and --processes N (pool size, default 2)."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--processes", type=int, default=2)
    return p.parse_known_args()[0]


def result(metric, value, unit):
    """One machine-readable line for bench/run.py."""
    print(f"RESULT {metric} {value:.9g} {unit}", flush=True)


if __name__ == "__main__":
    args = parse_args()
    count = 8 if args.quick else 32
    payloads = [bytes([i % 256]) * PAYLOAD for i in range(count)]
    with mp.Pool(args.processes) as pool:
        pool.map(len, payloads[:4])
        t0 = time.perf_counter()
        sizes = pool.map(len, payloads)
        t1 = time.perf_counter()
        pool.close()
        pool.join()
    assert sum(sizes) == PAYLOAD * count
    result("gb_per_s", sum(sizes) / (t1 - t0) / 1e9, "GB/s")
