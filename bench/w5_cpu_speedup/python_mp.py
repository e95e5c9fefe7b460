"""W5 in Python: 16 CPU-bound tasks of ~10 ms, serial vs Pool(2).map.

The task (a 64-bit xorshift chain) is calibrated at start-up to take ~10 ms
with this interpreter, as mproc.cpp calibrates its own. Prints
RESULT speedup <median serial / median pool>, serial_ms and pool_ms.
"""
import argparse
import multiprocessing as mp
import statistics
import time

MASK = (1 << 64) - 1


def parse_args():
    """--quick (smaller sizes) and --processes N (pool size, default 2)."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--processes", type=int, default=2)
    return p.parse_known_args()[0]


def result(metric, value, unit):
    """One machine-readable line for bench/run.py."""
    print(f"RESULT {metric} {value:.9g} {unit}", flush=True)


def burn(iterations):
    x = 88172645463325252
    for _ in range(iterations):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
    return x


def calibrate(seconds):
    probe = 20_000
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        burn(probe)
        times.append(time.perf_counter() - t0)
    return int(probe * seconds / statistics.median(times))


if __name__ == "__main__":
    args = parse_args()
    pairs = 1 if args.quick else 3
    work = [calibrate(0.010)] * 16
    serial, parallel = [], []
    with mp.Pool(args.processes) as pool:
        pool.map(burn, work)  # warm-up
        for _ in range(pairs):
            t0 = time.perf_counter()
            s = [burn(w) for w in work]
            serial.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            q = pool.map(burn, work)
            parallel.append(time.perf_counter() - t0)
            assert s == q
        pool.close()
        pool.join()
    result("speedup", statistics.median(serial) / statistics.median(parallel), "x")
    result("serial_ms", statistics.median(serial) * 1e3, "ms")
    result("pool_ms", statistics.median(parallel) * 1e3, "ms")
