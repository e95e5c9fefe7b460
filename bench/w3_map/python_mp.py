"""W3 in Python: Pool(2).map(x*x) over 1,000,000 ints, automatic chunksize
(the median of three maps).

Prints  RESULT items_per_s <input items per second>.
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


def square(x):
    return x * x


if __name__ == "__main__":
    args = parse_args()
    n = 200_000 if args.quick else 1_000_000
    xs = list(range(n))
    times = []
    with mp.Pool(args.processes) as pool:
        pool.map(square, xs[: n // 10])
        # The median of three maps: one map is a few milliseconds for mproc,
        # short enough for one stall of the VM to decide a single sample.
        for _ in range(1 if args.quick else 3):
            t0 = time.perf_counter()
            out = pool.map(square, xs)
            times.append(time.perf_counter() - t0)
            assert len(out) == n and out[-1] == (n - 1) ** 2
        pool.close()
        pool.join()
    result("items_per_s", n / sorted(times)[len(times) // 2], "items/s")
