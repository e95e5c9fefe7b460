"""W2 in Python: apply_async(noop).get() round trip on Pool(2), one in flight.

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


def noop():
    pass


if __name__ == "__main__":
    args = parse_args()
    warmup, timed = (100, 500) if args.quick else (300, 3000)
    with mp.Pool(args.processes) as pool:
        for _ in range(warmup):
            pool.apply_async(noop).get()
        t0 = time.perf_counter()
        for _ in range(timed):
            pool.apply_async(noop).get()
        t1 = time.perf_counter()
        pool.close()
        pool.join()
    result("roundtrip_us", (t1 - t0) / timed * 1e6, "us")
