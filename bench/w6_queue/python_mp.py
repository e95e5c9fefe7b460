"""W6 in Python: multiprocessing.Queue streaming 200,000 ints from a child,
and a ping-pong over two Queues.

Prints  RESULT stream_msgs_per_s <msgs/s>  and  RESULT pingpong_us <us>.
"""
import argparse
import multiprocessing as mp
import time

GUARD = 60  # seconds: a dead child fails the benchmark instead of hanging it


def parse_args():
    """--quick (smaller sizes) and --processes N (pool size, default 2)."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--processes", type=int, default=2)
    return p.parse_known_args()[0]


def result(metric, value, unit):
    """One machine-readable line for bench/run.py."""
    print(f"RESULT {metric} {value:.9g} {unit}", flush=True)


def produce(q, n):
    for i in range(n):
        q.put(i)


def echo(inq, outq):
    while True:
        v = inq.get(timeout=GUARD)
        if v < 0:
            return
        outq.put(v)


def stream(warmup, timed):
    q = mp.Queue()
    child = mp.Process(target=produce, args=(q, warmup + timed))
    child.start()
    for i in range(warmup):
        assert q.get(timeout=GUARD) == i
    t0 = time.perf_counter()
    for i in range(warmup, warmup + timed):
        assert q.get(timeout=GUARD) == i
    t1 = time.perf_counter()
    child.join()
    return timed / (t1 - t0)


def pingpong(warmup, timed):
    there, back = mp.Queue(), mp.Queue()
    child = mp.Process(target=echo, args=(there, back))
    child.start()
    t0 = 0.0
    for i in range(warmup + timed):
        if i == warmup:
            t0 = time.perf_counter()
        there.put(i)
        assert back.get(timeout=GUARD) == i
    t1 = time.perf_counter()
    there.put(-1)
    child.join()
    return (t1 - t0) / timed * 1e6


if __name__ == "__main__":
    args = parse_args()
    result("stream_msgs_per_s", stream(1000, 50_000 if args.quick else 200_000), "msgs/s")
    result("pingpong_us", pingpong(100, 500 if args.quick else 3000), "us")
