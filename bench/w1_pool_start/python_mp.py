"""W1 in Python: Pool(2) create + close + join, under fork and spawn.

The twin of mproc.cpp in this folder; run with Debian's /usr/bin/python3.
Prints  RESULT fork_ms <median ms>  and  RESULT spawn_ms <median ms>.
--touch-mib N first makes the parent N MiB bigger (a bytearray, every page
written), to show how fork's cost grows with the parent.
"""
import argparse
import multiprocessing as mp
import statistics
import time


def parse_args():
    """--quick (smaller sizes) and --processes N (pool size, default 2)."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--touch-mib", type=int, default=0)
    return p.parse_known_args()[0]


def result(metric, value, unit):
    """One machine-readable line for bench/run.py."""
    print(f"RESULT {metric} {value:.9g} {unit}", flush=True)


def pool_cycle(ctx, processes):
    t0 = time.perf_counter()
    pool = ctx.Pool(processes)
    pool.close()
    pool.join()
    return time.perf_counter() - t0


def median_ms(method, processes, warmup, timed):
    ctx = mp.get_context(method)
    for _ in range(warmup):
        pool_cycle(ctx, processes)
    return statistics.median(pool_cycle(ctx, processes) for _ in range(timed)) * 1e3


if __name__ == "__main__":
    args = parse_args()
    ballast = bytearray(args.touch_mib << 20)  # zero-filled: calloc'd pages are touched below
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    result("fork_ms", median_ms("fork", args.processes, 2, 5 if args.quick else 20), "ms")
    result("spawn_ms", median_ms("spawn", args.processes, 1, 3 if args.quick else 10), "ms")
