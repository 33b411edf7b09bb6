"""sorlab: SORL and its offline-RL baselines on OGBench, as a cached Snakemake workflow."""

from sorlab.numerics import apply_cpu_isa_cap

__version__ = "0.1.0"

# Before anything creates JAX's CPU client: every entry point (the CLI, `python -m
# sorlab.studies`, the tests, the benchmarks) compiles for the same CPU instruction set, so a
# number repeats bit for bit on any x86-64 machine with AVX2 (sorlab.numerics).
apply_cpu_isa_cap()
