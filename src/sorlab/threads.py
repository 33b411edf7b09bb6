"""Size XLA's CPU thread pool before JAX starts.

XLA gives its CPU client one compute thread per schedulable core. Two trainings side by side
on a 2-core machine then run four compute threads on two cores, and each loses about a quarter
of its speed to the contention (SORL at 3 x 128: 55 instead of 70 updates/s each, measured by
benchmarks/bench_side_by_side.py). XLA has no flag for the pool size in this JAX version, but it
sizes the pool from the process's CPU affinity when the client is created. So we narrow the
affinity while JAX creates its CPU client, then give every thread its cores back: n compute
threads that the OS may still move to whichever core is free.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings


def limit_cpu_threads(num_threads: int) -> None:
    """Create JAX's CPU client with `num_threads` compute threads (0: one per core).

    Call it before anything initialises a JAX backend; later calls cannot change the pool and
    only warn. On platforms without CPU affinity (macOS) it does nothing.
    """
    if num_threads < 0:
        raise ValueError(f"number of threads must be >= 0, got {num_threads}")
    if num_threads == 0 or not hasattr(os, "sched_setaffinity"):
        return
    if "jax" in sys.modules:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            warnings.warn(
                f"JAX is already running; cannot limit its CPU threads to {num_threads}",
                stacklevel=2,
            )
            return
    cores = sorted(os.sched_getaffinity(0))
    if num_threads >= len(cores):
        return
    os.sched_setaffinity(0, cores[:num_threads])
    try:
        import jax

        jax.devices("cpu")  # creates the CPU client, and with it the thread pool
    except RuntimeError:  # no CPU backend (e.g. JAX_PLATFORMS=cuda): nothing to size
        pass
    finally:
        # Threads inherit the mask they were created under: widen every thread's, not only ours.
        for tid in _thread_ids():
            try:
                os.sched_setaffinity(tid, cores)
            except OSError:  # a thread that ended meanwhile
                pass


def _thread_ids() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def _thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """The `--threads` option of the commands that run JAX computations (a bad value is named
    by argparse: exit status 2)."""
    parser.add_argument(
        "--threads",
        type=_thread_count,
        default=0,
        help="XLA CPU compute threads (default 0: one per core); 1 when jobs run side by side",
    )
