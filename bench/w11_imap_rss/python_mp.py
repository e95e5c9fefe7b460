"""W11 in Python: Pool(2).imap(x*x) over 10,000,000 ints (chunksize 1000),
consumed as it comes; the parent's peak RSS growth (VmHWM, reset first
through /proc/self/clear_refs).

Prints  RESULT rss_growth_mib <MiB>  and  RESULT items_per_s <items/s>.
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


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


if __name__ == "__main__":
    args = parse_args()
    n = 1_000_000 if args.quick else 10_000_000
    chunksize = 1000
    with mp.Pool(args.processes) as pool:
        for _ in pool.imap(square, range(100_000), chunksize):
            pass
        reset_peak_rss()
        before = status_kib("VmHWM")
        t0 = time.perf_counter()
        expect = 0
        for v in pool.imap(square, range(n), chunksize):
            assert v == expect * expect
            expect += 1
        t1 = time.perf_counter()
        after = status_kib("VmHWM")
        pool.close()
        pool.join()
    assert expect == n
    result("rss_growth_mib", (after - before) / 1024, "MiB")
    result("items_per_s", n / (t1 - t0), "items/s")
