"""W4 in Python: Pool(2).imap_unordered(x*x) over 100,000 ints, chunksize 1.

Prints  RESULT tasks_per_s <tasks per second>.
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


def run(pool, n):
    return sum(pool.imap_unordered(square, range(n), chunksize=1))


if __name__ == "__main__":
    args = parse_args()
    n = 20_000 if args.quick else 100_000
    with mp.Pool(args.processes) as pool:
        run(pool, n // 10)
        t0 = time.perf_counter()
        total = run(pool, n)
        t1 = time.perf_counter()
        pool.close()
        pool.join()
    m = n - 1
    assert total == m * (m + 1) * (2 * m + 1) // 6
    result("tasks_per_s", n / (t1 - t0), "tasks/s")
