"""sorlab: SORL and its offline-RL baselines on OGBench, as a cached Snakemake workflow."""

__version__ = "0.1.0"
