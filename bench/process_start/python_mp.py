#!/usr/bin/env python3
"""bench/process_start/python_mp.py: Process start+join with Python's multiprocessing.

The Python side of bench/process_start/mproc.cpp: for each start method,
time `p = ctx.Process(target=noop); p.start(); p.join()` many times and
print the median, min and max in microseconds. Standard library only.

    python3 bench/process_start/python_mp.py
    python3 bench/process_start/python_mp.py --methods fork spawn --repetitions 5

Each repetition times a batch of start+join rounds (more for fork, fewer for
the much slower spawn) and keeps its per-round median; the figures printed
are the median, min and max of those per-repetition medians, like the p50_us
counter of the C++ side. The forkserver is started before timing, as in
mproc.cpp. Output: one line per method, e.g.

    process_start/fork        median_us=  1234.5  min_us=  1200.1  max_us=  1300.9  rounds=200x5
"""

import argparse
import multiprocessing as mp
import statistics
import time


def noop():
    pass


ROUNDS = {"fork": 200, "forkserver": 100, "spawn": 20}


def one_repetition(ctx, rounds):
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        samples.append((time.perf_counter() - t0) * 1e6)
        if p.exitcode != 0:
            raise SystemExit(f"child exited with {p.exitcode}")
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--methods", nargs="+", default=["fork", "spawn", "forkserver"],
                        choices=["fork", "spawn", "forkserver"])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--rounds-scale", type=float, default=1.0,
                        help="multiply the rounds per repetition (default 1.0)")
    args = parser.parse_args()

    contexts = {m: mp.get_context(m) for m in args.methods}
    if "forkserver" in contexts:
        warm = contexts["forkserver"].Process(target=noop)
        warm.start()
        warm.join()

    medians = {m: [] for m in args.methods}
    # Alternate the methods within each repetition, so that a noisy minute
    # hits all of them alike.
    for _ in range(args.repetitions):
        for m in args.methods:
            rounds = max(1, int(ROUNDS[m] * args.rounds_scale))
            medians[m].append(one_repetition(contexts[m], rounds))

    for m in args.methods:
        v = medians[m]
        rounds = max(1, int(ROUNDS[m] * args.rounds_scale))
        print(f"process_start/{m:<11} median_us={statistics.median(v):9.1f}  "
              f"min_us={min(v):9.1f}  max_us={max(v):9.1f}  rounds={rounds}x{args.repetitions}")


if __name__ == "__main__":
    main()
