"""`limit_cpu_threads` / `--threads`: the size of XLA's CPU compute pool."""

import os
import subprocess
import sys

import pytest

# XLA names its CPU compute threads "tf_XLAEigen"; counting them observes the pool size.
PROBE = """
import os, sys
from sorlab.threads import limit_cpu_threads
before = os.sched_getaffinity(0)
limit_cpu_threads(int(sys.argv[1]))
import jax, jax.numpy as jnp
jax.jit(lambda a: a @ a)(jnp.ones((256, 256))).block_until_ready()
tids = os.listdir("/proc/self/task")
pool = [t for t in tids if open(f"/proc/self/task/{t}/comm").read().strip() == "tf_XLAEigen"]
print(len(pool), all(os.sched_getaffinity(int(t)) == before for t in tids))
"""

linux_only = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only"
)


def _probe(num_threads: int) -> tuple[int, bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(num_threads)],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    ).stdout.split()
    return int(out[0]), out[1] == "True"


@linux_only
def test_one_thread_pool_and_affinity_restored():
    cores = len(os.sched_getaffinity(0))
    pool, restored = _probe(1)
    assert pool == 1
    assert restored  # every thread, the compute thread included, may run on any core
    if cores >= 2:
        # The control: without a limit XLA starts one thread per core, so the probe sees it.
        default_pool, _ = _probe(0)
        assert default_pool == cores


def test_negative_threads_rejected(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sorlab.cli", "train", "--agent", "bc", "--dataset", "x.npz"]
        + ["--task", "1", "--steps", "1", "--out", str(tmp_path), "--threads", "-1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--threads" in result.stderr and "-1" in result.stderr


@linux_only
def test_limit_after_jax_started_warns():
    code = (
        "import warnings, jax; jax.devices()\n"
        "from sorlab.threads import limit_cpu_threads\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always'); limit_cpu_threads(1)\n"
        "print(len(w), str(w[0].message) if w else '')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("1 ") and "already running" in out
