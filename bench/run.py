#!/usr/bin/python3
"""bench/run.py: mproc and Python's multiprocessing side by side, next to
the machine's physical limits, in one run (issue 6).

    python3 bench/run.py                 # build, run everything, 5 repetitions
    python3 bench/run.py --quick         # smoke run: 3 repetitions, small sizes
    python3 bench/run.py --only W2,W7 --reps 9

What it does:
  1. Builds the benchmarks (Release, -DMPROC_BUILD_BENCH=ON, into build/bench):
     the mproc side of every workload (bench/<workload>/mproc.cpp) and the
     physical references (bench/reference/<name>.cpp). A program that does
     not build is reported as "pending" with the compiler's first error; the
     rest still runs.
  2. Runs every workload for Python (bench/<workload>/python_mp.py, with
     Debian's /usr/bin/python3), for mproc, and the references it is
     compared with, repetition after repetition, alternating the order of
     the implementations from one repetition to the next. W12 compares
     mproc::mpi::Pool with mpi4py.futures instead (bench/w12_mpi/
     mpi4py_futures.py): both sides run under mpirun with 4 ranks, and it
     is skipped, with the reason, where mpirun, mpi4py or mproc::mpi is
     missing.
  3. Prints one table (median with min-max per cell, and how many times
     faster mproc is than Python and than the reference), writes it to
     results/latest/table.md and table.csv, every sample to raw.json, and
     draws results/latest/chart.png with gnuplot.

Each program prints `RESULT <metric> <value> <unit>` lines (see
bench/common/harness.hpp); one run of a program is one sample. Nothing here
holds an absolute expectation of speed: every comparison is a ratio of
medians taken in the same run (this machine's wake-ups swing 10x from one
minute to the next). Stdlib only, so any python3 can run it.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = ROOT / "build" / "bench"
BIN = BUILD / "bench"
RESULTS = ROOT / "results" / "latest"

# ------------------------------------------------------------------ model ---


@dataclass(frozen=True)
class Target:
    """One goal of issue 6 for a row. kind: 'python' or 'ref' (mproc must
    be at least `factor` times better than that column), or 'value' (the
    mproc median itself must be >= or < `factor`, see `below`)."""

    kind: str
    factor: float
    text: str
    below: bool = False


@dataclass(frozen=True)
class Row:
    """One line of the table: a metric of a workload, for Python and mproc,
    and the reference it is compared with (program, metric)."""

    wid: str  # W1..W12: the group it runs in and --only selects by
    name: str
    folder: str  # bench/<folder>/{mproc.cpp,python_mp.py}
    metric: str
    unit: str
    better: str  # "lower" or "higher"
    ref: tuple[str, str] | None = None  # (reference program, metric)
    ref_label: str = ""
    targets: tuple[Target, ...] = ()
    words: tuple[str, str] = ("faster", "slower")
    ratios: bool = True
    note: str = ""
    short: str = ""  # the chart's label
    # W12: both sides run under mpirun with this many ranks (0: plain
    # processes), and the Python side is bench/<folder>/<python> run with
    # `python3 -m mpi4py.futures` (the Python column is then mpi4py.futures).
    mpi_ranks: int = 0
    python: str = "python_mp.py"

    def label(self) -> str:
        return self.short or self.name


# As a row's reference program: the row's own mproc program, which reports
# the reference metric itself (measured in the same process).
SELF = "@mproc"


def within(x: float) -> float:
    """'within x times of the reference' as a minimum 'times better'."""
    return 1.0 / x


ROWS: list[Row] = [
    Row("W1", "W1 Pool(2) create+close+join, fork", "w1_pool_start", "fork_ms", "ms", "lower",
        ("fork_waitpid", "fork2_waitpid_ms"), "2x raw fork+waitpid",
        (Target("python", 10, ">= 10x faster than Python"),
         Target("ref", within(1.5), "within 1.5x of 2 raw fork+waitpid")),
        short="W1 Pool start, fork"),
    Row("W1", "W1 same, vs raw forks from a threaded process", "w1_pool_start", "fork_ms", "ms", "lower",
        ("fork_waitpid", "fork2_waitpid_threaded_ms"), "2x raw fork+waitpid after a thread",
        note="the same raw forks once the process has run a second thread (glibc's multi-threaded fork "
             "path, which a process with a Pool always takes); no target",
        short="W1 Pool start vs threaded forks"),
    Row("W1", "W1 same, vs raw forks from the same process", "w1_pool_start", "fork_ms", "ms", "lower",
        (SELF, "raw_fork2_ms"), "2x raw fork+waitpid in the W1 program",
        note="two raw forks timed by the W1 program itself, between its pool cycles: fork costs what the "
             "forking process makes it cost, and this is the floor in the program measured; no target",
        short="W1 Pool start vs forks here"),
    Row("W1", "W1 Pool(2) create+close+join, spawn", "w1_pool_start", "spawn_ms", "ms", "lower",
        targets=(Target("python", 10, ">= 10x faster than Python's spawn pool"),),
        short="W1 Pool start, spawn"),
    Row("W2", "W2 apply_async(noop).get() round trip", "w2_apply_roundtrip", "roundtrip_us", "us", "lower",
        ("futex_pingpong", "roundtrip_us"), "raw futex ping-pong",
        (Target("python", 20, ">= 20x faster than Python"),
         Target("ref", within(1.5), "within 1.5x of the raw futex ping-pong")),
        short="W2 apply_async RTT vs futex"),
    Row("W2", "W2 same, vs spin-then-futex", "w2_apply_roundtrip", "roundtrip_us", "us", "lower",
        ("spin_futex_pingpong", "roundtrip_us"), "spin-then-futex ping-pong",
        note="shows what a round trip costs while work flows; no target",
        short="W2 apply_async RTT vs spin"),
    Row("W3", "W3 map(x*x), 1M ints, auto chunksize", "w3_map", "items_per_s", "items/s", "higher",
        targets=(Target("python", 20, ">= 20x Python's items/s"),),
        short="W3 map, 1M ints"),
    Row("W4", "W4 imap_unordered(x*x), 100k ints, chunksize 1", "w4_imap_unordered", "tasks_per_s", "tasks/s",
        "higher", targets=(Target("python", 12, ">= 12x Python (>= 1M tasks/s)"),),
        short="W4 imap_unordered, chunk 1"),
    Row("W5", "W5 16 x 10 ms CPU tasks: Pool(2).map speedup", "w5_cpu_speedup", "speedup", "x", "higher",
        ("fork_split_speedup", "speedup"), "2 raw forks, 8 tasks each",
        targets=(Target("value", 1.95, "speedup >= 1.95"),), words=("higher", "lower"),
        note="speedup = serial time / Pool.map time, each side against its own serial run; the reference "
             "is what two raw forked processes reach on the same work (the machine's limit)",
        short="W5 CPU speedup"),
    Row("W6", "W6 Queue streaming 200k ints", "w6_queue", "stream_msgs_per_s", "msgs/s", "higher",
        ("boost_message_queue", "msgs_per_s"), "Boost.Interprocess message_queue",
        (Target("python", 25, ">= 25x Python"),
         Target("ref", 1.5, ">= 1.5x Boost message_queue")),
        short="W6 Queue stream"),
    Row("W6", "W6 Queue ping-pong round trip", "w6_queue", "pingpong_us", "us", "lower",
        ("futex_pingpong", "roundtrip_us"), "raw futex ping-pong",
        (Target("ref", within(1.5), "within 1.5x of the raw futex ping-pong"),),
        short="W6 Queue ping-pong"),
    Row("W7", "W7 Pipe ping-pong round trip", "w7_pipe_pingpong", "roundtrip_us", "us", "lower",
        ("pipe_pingpong", "roundtrip_us"), "raw pipe ping-pong",
        (Target("ref", within(1.5), "within 1.5x of the raw pipe ping-pong"),),
        short="W7 Pipe ping-pong"),
    Row("W8", "W8 Pipe streaming 1 MiB messages", "w8_pipe_stream", "gb_per_s", "GB/s", "higher",
        ("socketpair_stream", "gb_per_s"), "raw socketpair, 1 MiB writes",
        (Target("ref", 1.0, ">= the raw socketpair"),
         Target("python", 12, ">= 12x Python")),
        short="W8 Pipe 1 MiB stream"),
    Row("W9", "W9 Value<int> += 1 under its lock, 2 x 100k", "w9_value", "lock_ops_per_s", "ops/s", "higher",
        ("pthread_mutex", "ops_per_s"), "process-shared pthread_mutex",
        (Target("ref", 0.8, ">= 0.8x the raw pthread mutex"),),
        short="W9 Value under lock"),
    Row("W9", "W9 Value<int>.fetch_add, 2 x 100k", "w9_value", "fetch_add_ops_per_s", "ops/s", "higher",
        ("atomic_fetch_add", "ops_per_s"), "relaxed atomic fetch_add",
        (Target("ref", 0.8, ">= 0.8x the raw atomic loop"),),
        note="Python has no atomic add on a Value: its column is the locked increment again",
        short="W9 Value fetch_add"),
    Row("W10", "W10 map over 32 x 8 MiB payloads", "w10_map_payloads", "gb_per_s", "GB/s", "higher",
        ("memcpy_bandwidth", "gb_per_s"), "memcpy of 8 MiB buffers",
        (Target("python", 10, ">= 10x Python's GB/s"),),
        short="W10 map 8 MiB payloads"),
    Row("W11", "W11 imap over 10M ints: parent peak RSS growth", "w11_imap_rss", "rss_growth_mib", "MiB",
        "lower", targets=(Target("value", 16, "< 16 MiB", below=True),), ratios=False,
        note="chunksize 1000 on both sides; ratios of near-zero growths mean nothing",
        short="W11 imap RSS"),
    # W12: mproc::mpi::Pool against mpi4py.futures.MPIPoolExecutor, 4 ranks
    # (rank 0 + 3 workers) each; the "Python" column is mpi4py.futures.
    Row("W12", "W12 mpi::Pool apply(square) round trip, 4 ranks", "w12_mpi", "roundtrip_us", "us", "lower",
        note="Python column: mpi4py.futures.MPIPoolExecutor submit().result(), same 4 ranks; no target",
        short="W12 MPI apply RTT", mpi_ranks=4, python="mpi4py_futures.py"),
    Row("W12", "W12 mpi::Pool map(x*x), 100k ints, 4 ranks", "w12_mpi", "map_tasks_per_s", "tasks/s", "higher",
        targets=(Target("python", 10, ">= 10x mpi4py.futures' tasks/s"),),
        note="chunksize len/(4*workers) on both sides (8334 here; RESULT map_chunksize); tasks/s = items/s",
        short="W12 MPI map, 100k ints", mpi_ranks=4, python="mpi4py_futures.py"),
    Row("W12", "W12 mpi::Pool map over 1 MiB payloads, 4 ranks", "w12_mpi", "payload_mb_per_s", "MB/s", "higher",
        targets=(Target("python", 1.0, ">= mpi4py.futures' MB/s"),),
        note="64 x 1 MiB, chunksize 1, each task returns its size",
        short="W12 MPI 1 MiB payloads", mpi_ranks=4, python="mpi4py_futures.py"),
    Row("W12", "W12 same, each payload returned", "w12_mpi", "echo_mb_per_s", "MB/s", "higher",
        targets=(Target("python", 1.0, ">= mpi4py.futures' MB/s"),),
        note="payload MB per second, each crossing both ways",
        short="W12 MPI 1 MiB echo", mpi_ranks=4, python="mpi4py_futures.py"),
]

GROUPS = [f"W{i}" for i in range(1, 13)]


@dataclass
class Program:
    """One executable of the run: key is 'python:<folder>', 'mproc:<folder>'
    or 'ref:<name>'."""

    key: str
    kind: str  # python | mproc | ref
    name: str
    target: str = ""  # CMake target (C++ only)
    status: str = "ok"  # ok | pending: ... | error: ... | skipped: ...
    failures: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    mpi_ranks: int = 0  # > 0: runs under mpirun (W12)
    script: str = "python_mp.py"

    def command(self, args: argparse.Namespace) -> list[str]:
        extra = (["--quick"] if args.quick else []) + ["--processes", str(args.processes)]
        if self.mpi_ranks:
            if self.kind == "python":
                return [*mpirun(self.mpi_ranks), args.python, "-m", "mpi4py.futures",
                        str(BENCH / self.name / self.script), *extra]
            return [*mpirun(self.mpi_ranks), str(BIN / self.target), *extra]
        if self.kind == "python":
            return [args.python, str(BENCH / self.name / "python_mp.py"), *extra]
        return [str(BIN / self.target), *extra]


def programs_for(rows: list[Row]) -> dict[str, list[Program]]:
    """The programs of each selected group, in their canonical order:
    Python, mproc, then the references."""
    made: dict[str, Program] = {}
    groups: dict[str, list[Program]] = {}

    def get(key: str, kind: str, name: str, target: str = "", row: Row | None = None) -> Program:
        if key not in made:
            made[key] = Program(key, kind, name, target)
            if row is not None and row.mpi_ranks:
                made[key].mpi_ranks, made[key].script = row.mpi_ranks, row.python
        return made[key]

    for r in rows:
        progs = groups.setdefault(r.wid, [])
        for p in (get(f"python:{r.folder}", "python", r.folder, row=r),
                  get(f"mproc:{r.folder}", "mproc", r.folder, f"bench_{r.folder}", row=r)):
            if p not in progs:
                progs.append(p)
        if r.ref and r.ref[0] != SELF:
            p = get(f"ref:{r.ref[0]}", "ref", r.ref[0], f"bench_reference_{r.ref[0]}")
            if p not in progs:
                progs.append(p)
    return groups


# -------------------------------------------------------------- MPI (W12) ---


def mpirun(ranks: int) -> list[str]:
    """The launcher of the W12 programs: mpirun (or mpiexec) with `ranks`
    ranks; Open MPI also gets --oversubscribe (4 ranks on a 2-CPU machine)
    and, for root, --allow-run-as-root, as in tests/mpi/CMakeLists.txt."""
    exe = shutil.which("mpirun") or shutil.which("mpiexec") or "mpirun"
    cmd = [exe]
    if _is_open_mpi(exe):
        cmd.append("--oversubscribe")
        if os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
    return cmd + ["-n", str(ranks)]


_OPEN_MPI: dict[str, bool] = {}


def _is_open_mpi(exe: str) -> bool:
    if exe not in _OPEN_MPI:
        try:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
            _OPEN_MPI[exe] = "Open MPI" in out.stdout + out.stderr or "OpenRTE" in out.stdout + out.stderr
        except (OSError, subprocess.TimeoutExpired):
            _OPEN_MPI[exe] = False
    return _OPEN_MPI[exe]


def mpi_missing(args: argparse.Namespace) -> str:
    """Why the W12 programs cannot run here, or '' if they can."""
    if not (shutil.which("mpirun") or shutil.which("mpiexec")):
        return "mpirun not found (Debian: openmpi-bin libopenmpi-dev)"
    res = subprocess.run([args.python, "-c", "import mpi4py.futures"], capture_output=True, text=True)
    if res.returncode != 0:
        return f"mpi4py.futures cannot be imported by {args.python} (Debian: python3-mpi4py)"
    return ""


def run_mpi(p: Program, args: argparse.Namespace) -> subprocess.CompletedProcess:
    """subprocess.run for a program under mpirun. On a timeout mpirun gets
    SIGTERM, so that it ends its ranks (they live in process groups of
    their own, and a SIGKILLed mpirun leaves them running), then SIGKILL."""
    proc = subprocess.Popen(p.command(args), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # mpirun would forward a terminal's input
    try:
        out, err = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# ------------------------------------------------------------------ build ---


def first_error(output: str) -> str:
    """The compiler's (or linker's) first error line, without the path
    prefix; make's own "Error 2" lines only when there is nothing better."""
    lines = output.splitlines()
    for pattern in ("error:", "Error", "rror"):
        for line in lines:
            if pattern in line and not line.startswith(("gmake", "make")):
                line = line.replace(str(ROOT) + "/", "")
                line = re.sub(r"^.*?(fatal error|error): ", "", line)
                return line.strip()[:160]
    tail = [l for l in lines if l.strip()]
    return (tail[-1] if tail else "build failed")[:160]


def build(programs: list[Program], jobs: int) -> None:
    """Configures build/bench and builds each program's target; marks the
    ones that do not build as pending."""
    cxx = [p for p in programs if p.kind != "python"]
    if not cxx:
        return
    if shutil.which("cmake") is None:
        for p in cxx:
            p.status = "pending: cmake not found (run scripts/deps.sh)"
        return
    log(f"configure: {BUILD.relative_to(ROOT)} (Release, MPROC_BUILD_BENCH=ON)")
    cfg = subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=Release", "-DMPROC_BUILD_BENCH=ON",
         "-DMPROC_BUILD_TESTS=OFF", "-DMPROC_BUILD_EXAMPLES=OFF", "-DMPROC_BUILD_FUZZ=OFF"],
        capture_output=True, text=True)
    if cfg.returncode != 0:
        reason = "pending: configure failed: " + first_error(cfg.stdout + cfg.stderr)
        for p in cxx:
            p.status = reason
        return

    # W12's program exists only where CMake found MPI (bench/CMakeLists.txt).
    for p in [p for p in cxx if p.mpi_ranks]:
        if not (BUILD / "bench" / "CMakeFiles" / f"{p.target}.dir").is_dir():
            p.status = "skipped: CMake built no mproc::mpi here (MPI not found; Debian: libopenmpi-dev)"
            cxx.remove(p)

    # The references do not need the library; the mproc programs do. Build
    # the library once first, so that the parallel target builds below only
    # find it up to date (with mproc::mpi for W12).
    mproc_progs = [p for p in cxx if p.kind == "mproc"]
    if mproc_progs:
        libs = ["mproc"] + (["mproc_mpi"] if any(p.mpi_ranks for p in mproc_progs) else [])
        log(f"build: the mproc librar{'ies' if len(libs) > 1 else 'y'} (-j{jobs})")
        lib = subprocess.run(["cmake", "--build", str(BUILD), "-j", str(jobs), "--target", *libs],
                             capture_output=True, text=True)
        if lib.returncode != 0:
            reason = "pending: the library does not build: " + first_error(lib.stdout + lib.stderr)
            for p in mproc_progs:
                p.status = reason
            cxx = [p for p in cxx if p.kind == "ref"]

    # All programs in one build: one make decides what is out of date
    # (headers included) and builds it in parallel; two parallel makes could
    # both decide to rebuild libmproc.a and corrupt it, and make's
    # "<target>/fast" skips the header dependencies (stale objects that no
    # longer link). Only if that build fails is each program built on its
    # own, to tell which ones do not build.
    log(f"build: {len(cxx)} programs (-j{jobs})")
    every = subprocess.run(["cmake", "--build", str(BUILD), "-j", str(jobs), "--target", *[p.target for p in cxx]],
                           capture_output=True, text=True)
    if every.returncode != 0:
        for p in cxx:
            res = subprocess.run(["cmake", "--build", str(BUILD), "--target", p.target],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                p.status = "pending: " + first_error(res.stdout + res.stderr)
                log(f"  {p.target}: does not build ({p.status[9:]})")
    for p in cxx:
        if p.status == "ok" and not (BIN / p.target).exists():
            p.status = f"pending: {p.target} was not produced"


# -------------------------------------------------------------------- run ---

RESULT_RE = re.compile(r"^RESULT\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def run_once(p: Program, args: argparse.Namespace) -> str:
    """Runs one sample of a program; returns a short summary for the log."""
    t0 = time.monotonic()
    try:
        if p.mpi_ranks:
            res = run_mpi(p, args)
        else:
            res = subprocess.run(p.command(args), cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        p.failures += 1
        p.status = f"error: timed out after {args.timeout} s"
        return p.status
    p.seconds.append(time.monotonic() - t0)
    got = {}
    for line in res.stdout.splitlines():
        m = RESULT_RE.match(line.strip())
        if m:
            try:
                got[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    if res.returncode != 0 or not got:
        p.failures += 1
        err = [l for l in (res.stderr or res.stdout).splitlines() if l.strip()]
        p.status = f"error: exit {res.returncode}" + (f": {err[-1].strip()[:140]}" if err else "")
        return p.status
    for k, v in got.items():
        p.samples.setdefault(k, []).append(v)
    return " ".join(f"{k}={fmt(v)}" for k, v in got.items())


def run_all(groups: dict[str, list[Program]], args: argparse.Namespace) -> None:
    """Repetition after repetition, each group's programs back to back;
    the order is Python, mproc, references on even repetitions and the
    reverse on odd ones, so that no implementation always runs first."""
    for rep in range(args.reps):
        for wid, progs in groups.items():
            order = progs if rep % 2 == 0 else list(reversed(progs))
            for p in order:
                if p.status.startswith(("pending", "skipped")) or p.failures >= 2:
                    continue
                t0 = time.monotonic()
                summary = run_once(p, args)
                log(f"[{rep + 1}/{args.reps}] {wid:<4} {p.key:<34} {summary}  ({time.monotonic() - t0:.1f} s)")


# ---------------------------------------------------------------- reports ---


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fmt(v: float | None) -> str:
    """Three significant digits, k/M/G for big numbers."""
    if v is None:
        return "-"
    a = abs(v)
    for at, div, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if a >= at:
            return f"{v / div:.3g}{suffix}" if a / div < 1000 else f"{v / div:.0f}{suffix}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


@dataclass
class Stat:
    median: float
    lo: float
    hi: float
    n: int

    def cell(self) -> str:
        return f"{fmt(self.median)} ({fmt(self.lo)}-{fmt(self.hi)})"


def stat(p: Program | None, metric: str) -> Stat | None:
    if p is None or metric not in p.samples or not p.samples[metric]:
        return None
    xs = p.samples[metric]
    return Stat(statistics.median(xs), min(xs), max(xs), len(xs))


def better_factor(row: Row, mp: Stat | None, other: Stat | None) -> float | None:
    """How many times better mproc's median is than the other's (> 1:
    mproc is better; for times that means faster)."""
    if mp is None or other is None or mp.median <= 0 or other.median <= 0:
        return None
    return other.median / mp.median if row.better == "lower" else mp.median / other.median


def ratio_text(row: Row, f: float | None) -> str:
    if not row.ratios:
        return "n/a"
    if f is None:
        return "-"
    up, down = row.words
    if f >= 1:
        return f"{f:.2f}x {up}" if f < 10 else f"{f:.0f}x {up}"
    g = 1 / f
    return f"{g:.2f}x {down}" if g < 10 else f"{g:.0f}x {down}"


@dataclass
class Line:
    row: Row
    py: Stat | None
    mp: Stat | None
    ref: Stat | None
    vs_py: float | None
    vs_ref: float | None
    py_status: str
    mp_status: str
    ref_status: str


def make_lines(rows: list[Row], progs: dict[str, Program]) -> list[Line]:
    out = []
    for r in rows:
        py = progs.get(f"python:{r.folder}")
        mp = progs.get(f"mproc:{r.folder}")
        ref = (mp if r.ref[0] == SELF else progs.get(f"ref:{r.ref[0]}")) if r.ref else None
        s_py, s_mp = stat(py, r.metric), stat(mp, r.metric)
        s_ref = stat(ref, r.ref[1]) if r.ref else None
        out.append(Line(r, s_py, s_mp, s_ref, better_factor(r, s_mp, s_py), better_factor(r, s_mp, s_ref),
                        py.status if py else "-", mp.status if mp else "-",
                        ref.status if ref else "-"))
    return out


def cell(s: Stat | None, status: str) -> str:
    if s is not None:
        return s.cell()
    if status.startswith("pending"):
        return "pending"
    if status.startswith("skipped"):
        return "skipped"
    if status.startswith("error"):
        return "error"
    return "-"


def ref_cell(line: Line) -> str:
    if not line.row.ref:
        return "-"
    return f"{cell(line.ref, line.ref_status)} {line.row.ref_label}"


def target_verdicts(line: Line) -> list[tuple[str, str]]:
    """(target, verdict) for each target of a row."""
    out = []
    for t in line.row.targets:
        if t.kind == "value":
            if line.mp is None:
                out.append((t.text, "not measured"))
                continue
            v = line.mp.median
            ok = v < t.factor if t.below else v >= t.factor
            unit = "x" if line.row.unit == "x" else f" {line.row.unit}"
            out.append((t.text, f"{'met' if ok else 'MISSED'}: {fmt(v)}{unit}"))
            continue
        f = line.vs_py if t.kind == "python" else line.vs_ref
        if f is None:
            out.append((t.text, "not measured"))
            continue
        ok = f >= t.factor
        verdict = "met" if ok else "MISSED"
        detail = ratio_text(line.row, f)
        if not ok:
            detail += f", {t.factor / f:.2f}x short"
        out.append((t.text, f"{verdict}: {detail}"))
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for l in Path("/proc/cpuinfo").read_text().splitlines():
            if l.startswith("model name"):
                model = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cpus = str(len(os.sched_getaffinity(0)))
    except AttributeError:
        cpus = str(os.cpu_count())
    mem = "?"
    try:
        for l in Path("/proc/meminfo").read_text().splitlines():
            if l.startswith("MemTotal"):
                mem = f"{int(l.split()[1]) / 1048576:.0f} GiB"
    except OSError:
        pass
    return {"nproc": cpus, "cpu": model, "kernel": platform.release(), "memory": mem,
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


TABLE_HEAD = ["Workload", "Python median (min-max)", "mproc median (min-max)", "Reference median (min-max)",
              "mproc vs Python", "mproc vs reference"]


def table_cells(lines: list[Line]) -> list[list[str]]:
    rows = []
    for l in lines:
        rows.append([f"{l.row.name} [{l.row.unit}]", cell(l.py, l.py_status), cell(l.mp, l.mp_status),
                     ref_cell(l), ratio_text(l.row, l.vs_py),
                     ratio_text(l.row, l.vs_ref) if l.row.ref else "-"])
    return rows


def console_table(lines: list[Line]) -> str:
    rows = [TABLE_HEAD] + table_cells(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEAD))]
    out = []
    for k, r in enumerate(rows):
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(lines: list[Line], info: dict[str, str], argv: list[str], reps: int, started: str,
             groups: dict[str, list[Program]]) -> str:
    md = []
    md.append(f"Taken {started} on {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, "
              f"{info['memory']} RAM; load average (1/5/15 min) {info.get('load_start', '?')} at the start, "
              f"{info['load']} at the end. "
              f"`{' '.join(['python3', 'bench/run.py'] + argv)}`: {reps} repetitions per program, "
              f"alternating; each cell is the median (min-max) of the repetitions. "
              f"\"x faster\" = how many times faster (or higher, for rates) mproc's median is.")
    md.append("")
    md.append("| " + " | ".join(TABLE_HEAD) + " |")
    md.append("|" + "|".join(["---"] + ["--:"] * 5) + "|")
    for r in table_cells(lines):
        md.append("| " + " | ".join(md_text(c).replace("|", "\\|") for c in r) + " |")
    md.append("")
    md.append("Targets (issue 6), from the medians above:")
    md.append("")
    for l in lines:
        for text, verdict in target_verdicts(l):
            md.append(md_text(f"- {l.row.name}: {text}: **{verdict}**"))
    notes = [md_text(f"- {l.row.name}: {l.row.note}") for l in lines if l.row.note]
    problems = []
    seen = set()
    for progs in groups.values():
        for p in progs:
            if p.key not in seen and p.status != "ok":
                seen.add(p.key)
                problems.append(f"- `{p.key}`: {p.status}")
    if notes:
        md += ["", "Notes:", ""] + notes
    if problems:
        md += ["", "Not measured:", ""] + problems
    return "\n".join(md) + "\n"


def md_text(text: str) -> str:
    """Markdown-safe text: `Value<int>` must not read as an HTML tag."""
    return text.replace("<", "&lt;")


def write_csv(path: Path, lines: list[Line]) -> None:
    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.6g}"

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "workload", "unit", "better", "python_median", "python_min", "python_max",
                    "mproc_median", "mproc_min", "mproc_max", "reference", "reference_median",
                    "reference_min", "reference_max", "mproc_times_better_than_python",
                    "mproc_times_better_than_reference", "python_n", "mproc_n", "reference_n",
                    "mproc_status"])
        for l in lines:
            def trio(s: Stat | None) -> list[str]:
                return [num(s.median), num(s.lo), num(s.hi)] if s else ["", "", ""]

            w.writerow([l.row.wid, l.row.name, l.row.unit, l.row.better, *trio(l.py), *trio(l.mp),
                        l.row.ref_label, *trio(l.ref), num(l.vs_py if l.row.ratios else None),
                        num(l.vs_ref if l.row.ratios else None), l.py.n if l.py else 0,
                        l.mp.n if l.mp else 0, l.ref.n if l.ref else 0, l.mp_status])


def chart(path: Path, lines: list[Line], info: dict[str, str]) -> str:
    """A bar chart of the two 'times better' columns, log scale, drawn with
    gnuplot. Returns '' or why no chart was drawn."""
    gp = shutil.which("gnuplot")
    if gp is None:
        return "gnuplot not found (Debian: gnuplot-nox)"
    data = path.with_suffix(".dat")
    with data.open("w") as f:
        for l in lines:
            if not l.row.ratios or (l.vs_py is None and l.vs_ref is None):
                continue
            a = "?" if l.vs_py is None else f"{l.vs_py:.6g}"
            b = "?" if l.vs_ref is None else f"{l.vs_ref:.6g}"
            short = l.row.label().replace('"', "'")
            f.write(f'"{short}" {a} {b}\n')
    # Bars grow from 1 (parity) up when mproc is better and down when it
    # is worse, hence boxxyerror (x, y, xlow, xhigh, ylow, yhigh) instead
    # of a histogram, whose boxes would all rise from the bottom edge.
    script = f"""
set terminal pngcairo noenhanced size 1400,760 font "sans,10"
set output "{path}"
set title "mproc relative to Python multiprocessing and to the physical reference\\n(ratio of medians from one run; above 1 = mproc better, below 1 = mproc worse; log scale)\\n{info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}"
set datafile missing "?"
set style fill solid 0.85 border -1
set logscale y 10
set yrange [0.001:1000]
set rmargin 10
set xrange [-0.6:*]
set offsets 0, 0.6, 0, 0
set ylabel "times better (x)"
set grid ytics
set xtics rotate by -35 scale 0 font ",9"
set key top right
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black" front
plot "{data}" using ($0-0.2):2:($0-0.39):($0-0.01):(1):2:xtic(1) with boxxyerror title "mproc vs Python" lc rgb "#3b75af", \\
     "" using ($0+0.2):3:($0+0.01):($0+0.39):(1):3 with boxxyerror title "mproc vs reference" lc rgb "#ef8536", \\
     "" using ($0-0.2):($2 >= 1 ? $2*1.4 : $2/1.4):($2 >= 10 ? sprintf("%.0fx", $2) : sprintf("%.2gx", $2)) with labels font ",8" notitle, \\
     "" using ($0+0.2):($3 >= 1 ? $3*1.4 : $3/1.4):($3 >= 10 ? sprintf("%.0fx", $3) : sprintf("%.2gx", $3)) with labels font ",8" notitle
"""
    res = subprocess.run([gp], input=script, capture_output=True, text=True)
    if res.returncode != 0:
        return "gnuplot failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]
    return ""


PUBLISH_BEGIN = "<!-- bench:table:begin -->"
PUBLISH_END = "<!-- bench:table:end -->"


def publish(md: str) -> None:
    """Copies the chart to docs/perf/chart.png and the table between the
    markers of README.md and docs/performance.md."""
    (ROOT / "docs" / "perf").mkdir(parents=True, exist_ok=True)
    if (RESULTS / "chart.png").exists():
        shutil.copyfile(RESULTS / "chart.png", ROOT / "docs" / "perf" / "chart.png")
    (ROOT / "docs" / "perf" / "table.md").write_text(md)
    for doc in (ROOT / "README.md", ROOT / "docs" / "performance.md"):
        if not doc.exists():
            continue
        text = doc.read_text()
        a, b = text.find(PUBLISH_BEGIN), text.find(PUBLISH_END)
        if a < 0 or b < a:
            log(f"publish: no {PUBLISH_BEGIN} ... {PUBLISH_END} markers in {doc.relative_to(ROOT)}; skipped")
            continue
        doc.write_text(text[: a + len(PUBLISH_BEGIN)] + "\n" + md + text[b:])
        log(f"publish: table written into {doc.relative_to(ROOT)}")


# ------------------------------------------------------------------- main ---


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 repetitions, smaller sizes")
    ap.add_argument("--reps", type=int, help="repetitions per program (default 5, --quick 3)")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W2,W7")
    ap.add_argument("--processes", type=int, default=2, help="pool size of the workloads (default 2)")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="interpreter for the Python side (default Debian's /usr/bin/python3)")
    ap.add_argument("--no-build", action="store_true", help="use the programs already in build/bench")
    ap.add_argument("--timeout", type=int, default=300, help="seconds allowed per program run (default 300)")
    ap.add_argument("--publish", action="store_true",
                    help="also copy the chart to docs/perf/ and the table into README.md and docs/performance.md")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("--rerender", action="store_true",
                    help="measure nothing: redo the table, CSV and chart from results/latest/raw.json")
    args = ap.parse_args()
    if args.reps is None:
        args.reps = 3 if args.quick else 5
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    if args.list:
        for r in ROWS:
            ref = f"  (reference: {r.ref_label})" if r.ref else ""
            print(f"{r.wid:<4} {r.name}{ref}")
        return 0
    rows = ROWS
    if args.only:
        wanted = {w.strip().upper() for w in args.only.split(",") if w.strip()}
        unknown = wanted - set(GROUPS)
        if unknown:
            log(f"run.py: unknown workload(s) {', '.join(sorted(unknown))}; see --list")
            return 2
        rows = [r for r in ROWS if r.wid in wanted]
    if not Path(args.python).exists():
        log(f"run.py: {args.python} not found; give --python")
        return 2

    if args.rerender:
        raw = json.loads((RESULTS / "raw.json").read_text())
        rows = [r for r in ROWS if f"python:{r.folder}" in raw["programs"] or f"mproc:{r.folder}" in raw["programs"]]
        groups = programs_for(rows)
        everything = {p.key: p for progs in groups.values() for p in progs}
        for k, p in everything.items():
            saved = raw["programs"].get(k, {})
            p.status = saved.get("status", "error: not in raw.json")
            p.samples = saved.get("samples", {})
            p.seconds = saved.get("seconds", [])
        started, argv, reps, info = raw["started"], raw["argv"], raw["reps"], raw["machine"]
        t0 = built = time.monotonic()
    else:
        started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
        argv, reps = sys.argv[1:], args.reps
        t0 = time.monotonic()
        groups = programs_for(rows)
        everything = {p.key: p for progs in groups.values() for p in progs}
        mpi_progs = [p for p in everything.values() if p.mpi_ranks]
        why_no_mpi = mpi_missing(args) if mpi_progs else ""
        for p in mpi_progs if why_no_mpi else []:
            p.status = "skipped: " + why_no_mpi
        if not args.no_build:
            jobs = int(os.environ.get("MPROC_JOBS", "2") or 2)
            build([p for p in everything.values() if not p.status.startswith("skipped")], jobs)
        else:
            for p in everything.values():
                if p.status.startswith("skipped"):
                    continue
                if p.kind != "python" and not (BIN / p.target).exists():
                    p.status = f"pending: {p.target} not built (run without --no-build)"
        built = time.monotonic()
        log(f"run: {args.reps} repetitions of {len(everything)} programs"
            f"{' (quick sizes)' if args.quick else ''}")
        run_all(groups, args)
        info = machine()
        info["load_start"] = load_start

    lines = make_lines(rows, everything)
    md = markdown(lines, info, argv, reps, started, groups)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "table.md").write_text(md)
    write_csv(RESULTS / "table.csv", lines)
    if not args.rerender:
        (RESULTS / "raw.json").write_text(json.dumps({
            "started": started, "machine": info, "argv": argv, "reps": reps,
            "quick": args.quick, "processes": args.processes,
            "programs": {k: {"status": p.status, "samples": p.samples, "seconds": p.seconds}
                         for k, p in everything.items()}}, indent=1))
    why = chart(RESULTS / "chart.png", lines, info)

    print()
    print(console_table(lines))
    print()
    for l in lines:
        for text, verdict in target_verdicts(l):
            print(f"  {l.row.name}: {text}: {verdict}")
    for k, p in everything.items():
        if p.status != "ok":
            print(f"  not measured: {k}: {p.status}")
    print()
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}, load {info['load']}")
    print(f"written: {RESULTS.relative_to(ROOT)}/table.md, table.csv, raw.json"
          + (", chart.png" if not why else f" (no chart: {why})"))
    print(f"time: build {built - t0:.0f} s, run {time.monotonic() - built:.0f} s")
    if args.publish:
        publish(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
