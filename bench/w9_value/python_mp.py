"""W9 in Python: multiprocessing.Value('i') incremented by 2 processes x
100,000 under its lock, as mproc.cpp does: a Barrier(3) start line, each
child notes CLOCK_MONOTONIC at the start and end of its loop in a
RawArray('d'), and a round lasts from the first start to the last end.

Python has no atomic fetch_add on a Value: its only correct increment is
the locked one, so fetch_add_ops_per_s is that same locked loop, measured
again (say so wherever the number is shown).

Prints  RESULT lock_ops_per_s <ops/s>  and  RESULT fetch_add_ops_per_s <ops/s>.
"""
import argparse
import multiprocessing as mp
import statistics
import time

PER_CHILD = 100_000
GUARD = 60


def parse_args():
    """--quick (smaller sizes) and --processes N (pool size, default 2)."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--processes", type=int, default=2)
    return p.parse_known_args()[0]


def result(metric, value, unit):
    """One machine-readable line for bench/run.py."""
    print(f"RESULT {metric} {value:.9g} {unit}", flush=True)


def now():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def locked(v, start_line, times, who, n):
    start_line.wait(GUARD)
    t0 = now()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    times[2 * who + 1] = now()
    times[2 * who] = t0


def rate(rounds):
    rates = []
    for r in range(rounds + 1):
        v = mp.Value("i", 0)
        start_line = mp.Barrier(3)
        times = mp.RawArray("d", 4)
        kids = [mp.Process(target=locked, args=(v, start_line, times, who, PER_CHILD)) for who in range(2)]
        for k in kids:
            k.start()
        start_line.wait(GUARD)
        for k in kids:
            k.join()
        assert all(k.exitcode == 0 for k in kids)
        assert v.value == 2 * PER_CHILD
        span = max(times[1], times[3]) - min(times[0], times[2])
        if r > 0:
            rates.append(2 * PER_CHILD / span)
    return statistics.median(rates)


if __name__ == "__main__":
    args = parse_args()
    rounds = 1 if args.quick else 3
    result("lock_ops_per_s", rate(rounds), "ops/s")
    result("fetch_add_ops_per_s", rate(rounds), "ops/s")
