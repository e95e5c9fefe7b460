"""W12 in Python: mpi4py.futures.MPIPoolExecutor across MPI ranks, the same
work and metrics as bench/w12_mpi/mproc.cpp. Run under mpirun, 4 ranks:

    mpirun --oversubscribe -n 4 /usr/bin/python3 -m mpi4py.futures \\
        bench/w12_mpi/mpi4py_futures.py [--quick]

`-m mpi4py.futures` makes ranks 1-3 the executor's workers and runs this
script on rank 0 only (the workers import it under another name, so the
`__main__` block below runs once). Prints

    RESULT roundtrip_us      mean us per submit(square, i).result()
    RESULT map_tasks_per_s   items per second of map(square) over small ints
    RESULT map_chunksize     the chunksize that map used
    RESULT payload_mb_per_s  10^6 payload bytes per second: map over 1 MiB
                             bytes, each task returning its len
    RESULT echo_mb_per_s     the same, each task returning its payload
    RESULT workers           worker ranks of the executor

The small-task map uses the same chunksize as the mproc side by default
(len / (4 * workers), rounded up: 12 chunks over 3 workers), which is also
about mpi4py's best for 100k items (a sweep with --chunksize: from a quarter
to twice that size its rate is the same within noise; smaller chunks cost
it a pickled message each way per chunk and are slower). The payload maps
use chunksize 1 (mpi4py's default; a chunk of several 1 MiB items would be
pickled into one message). The executor keeps its default polling backoff
(1 ms at most), as mproc keeps its own.
Sizes: --quick; --roundtrips N, --items N, --chunksize N, --payloads N.
"""
import argparse
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

PAYLOAD = 1 << 20


def parse_args():
    """--quick (smaller sizes) and the size overrides; --processes is
    accepted and ignored (the ranks are mpirun's -n)."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--processes", type=int, default=0)
    p.add_argument("--roundtrips", type=int)
    p.add_argument("--items", type=int)
    p.add_argument("--chunksize", type=int, default=0)
    p.add_argument("--payloads", type=int)
    a = p.parse_known_args()[0]
    if a.roundtrips is None:
        a.roundtrips = 500 if a.quick else 5000
    if a.items is None:
        a.items = 20_000 if a.quick else 100_000
    if a.payloads is None:
        a.payloads = 16 if a.quick else 64
    return a


def result(metric, value, unit):
    """One machine-readable line for bench/run.py."""
    print(f"RESULT {metric} {value:.9g} {unit}", flush=True)


def square(x):
    return x * x


def echo(p):
    return p


if __name__ == "__main__":
    args = parse_args()
    # Under `-m mpi4py.futures` the workers are the other ranks of the world.
    workers = MPI.COMM_WORLD.Get_size() - 1
    with MPIPoolExecutor() as executor:

        # (a) Latency: one small task in flight at a time.
        for i in range(args.roundtrips // 10 + 10):
            executor.submit(square, i).result()
        t0 = time.perf_counter()
        total = 0
        for i in range(args.roundtrips):
            total += executor.submit(square, i).result()
        t1 = time.perf_counter()
        assert total > 0
        roundtrip_us = (t1 - t0) / args.roundtrips * 1e6

        # (b) Throughput of small tasks.
        xs = list(range(args.items))
        chunksize = args.chunksize or -(-len(xs) // (4 * workers))
        list(executor.map(square, xs[: args.items // 10 + 1], chunksize=chunksize))
        t0 = time.perf_counter()
        out = list(executor.map(square, xs, chunksize=chunksize))
        t1 = time.perf_counter()
        assert len(out) == len(xs) and out[-1] == xs[-1] ** 2
        tasks_per_s = len(xs) / (t1 - t0)

        # (c) Bandwidth: 1 MiB arguments, a size back; then the payload back too.
        data = [bytes([i % 256]) * PAYLOAD for i in range(args.payloads)]
        list(executor.map(len, data[:workers]))
        t0 = time.perf_counter()
        sizes = list(executor.map(len, data))
        t1 = time.perf_counter()
        assert sum(sizes) == PAYLOAD * len(data)
        payload_mb_per_s = sum(sizes) / (t1 - t0) / 1e6

        list(executor.map(echo, data[:workers]))
        t0 = time.perf_counter()
        back = list(executor.map(echo, data))
        t1 = time.perf_counter()
        assert len(back) == len(data) and back[-1] == data[-1]
        echo_mb_per_s = PAYLOAD * len(data) / (t1 - t0) / 1e6

    result("roundtrip_us", roundtrip_us, "us")
    result("map_tasks_per_s", tasks_per_s, "tasks/s")
    result("map_chunksize", chunksize, "items")
    result("payload_mb_per_s", payload_mb_per_s, "MB/s")
    result("echo_mb_per_s", echo_mb_per_s, "MB/s")
    result("workers", workers, "ranks")
