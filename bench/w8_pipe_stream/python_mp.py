"""W8 in Python: multiprocessing.Pipe streaming 1 MiB messages
(send_bytes in a child, recv_bytes in the parent).

Prints  RESULT gb_per_s <10^9 payload bytes per second>.
"""
import argparse
import multiprocessing as mp
import time

MSG = 1 << 20


def parse_args():
    """--quick (smaller sizes) and --processes N (pool size, default 2)."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--processes", type=int, default=2)
    return p.parse_known_args()[0]


def result(metric, value, unit):
    """One machine-readable line for bench/run.py."""
    print(f"RESULT {metric} {value:.9g} {unit}", flush=True)


def send_all(conn, count):
    buf = b"x" * MSG
    for _ in range(count):
        conn.send_bytes(buf)


if __name__ == "__main__":
    args = parse_args()
    warmup, timed = 16, (64 if args.quick else 512)
    rx, tx = mp.Pipe(duplex=False)
    child = mp.Process(target=send_all, args=(tx, warmup + timed))
    child.start()
    tx.close()
    for _ in range(warmup):
        rx.recv_bytes()
    t0 = time.perf_counter()
    total = 0
    for _ in range(timed):
        total += len(rx.recv_bytes())
    t1 = time.perf_counter()
    child.join()
    assert total == MSG * timed
    result("gb_per_s", total / (t1 - t0) / 1e9, "GB/s")
