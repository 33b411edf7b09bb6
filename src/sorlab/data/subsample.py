"""Episode-level subsampling of a dataset (the data-scale study, docs/studies.md)."""

from __future__ import annotations

import numpy as np


def episode_bounds(terminals: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop), ...] of each episode; `terminals[i] = 1` marks the last row of an episode.

    Rows after the last terminal form one more (cut-off) episode, so every row belongs to one.
    """
    terminals = np.asarray(terminals).reshape(-1)
    ends = np.flatnonzero(terminals > 0.5) + 1
    starts = np.concatenate([[0], ends])
    stops = np.concatenate([ends, [len(terminals)]])
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b > a]


def subsample_episodes(
    dataset: dict[str, np.ndarray], fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Keep a seeded random `fraction` of the episodes, each whole, in their original order.

    Episodes are delimited by `dataset["terminals"]` (1 on an episode's last row, as in OGBench
    files and in `load_training_data`'s transitions). At least one episode is kept; the count
    is round(fraction * episodes). Arrays whose length is not the number of rows are kept as is.
    """
    if "terminals" not in dataset:
        raise ValueError("subsample_episodes: the dataset has no 'terminals' key")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"data fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return dict(dataset)
    rows = len(dataset["terminals"])
    episodes = episode_bounds(dataset["terminals"])
    count = max(1, round(fraction * len(episodes)))
    chosen = np.sort(np.random.default_rng(seed).choice(len(episodes), size=count, replace=False))
    index = np.concatenate([np.arange(*episodes[i]) for i in chosen])
    return {
        k: (v[index] if hasattr(v, "__len__") and len(v) == rows else v) for k, v in dataset.items()
    }
