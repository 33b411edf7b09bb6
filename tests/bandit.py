"""A small offline contextual bandit with two action modes of different reward.

Every transition is one step that ends its episode (mask 0), so Q(s, a) = r(a). The data holds
the two modes in equal measure: around +MODE (reward 1) and around -MODE (reward 0). A policy
that imitates the data puts half its mass on each mode; one that maximises Q prefers +MODE.
"""

from __future__ import annotations

import numpy as np

OBS_DIM = 4
ACTION_DIM = 2
MODE = np.array([0.6, 0.6], dtype=np.float32)
MODE_NOISE = 0.05


def make_bandit_dataset(size: int = 4096, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    observations = rng.normal(size=(size, OBS_DIM)).astype(np.float32)
    good = rng.random(size) < 0.5
    centers = np.where(good[:, None], MODE, -MODE)
    actions = np.clip(centers + MODE_NOISE * rng.normal(size=(size, ACTION_DIM)), -1, 1)
    rewards = good.astype(np.float32)
    return {
        "observations": observations,
        "actions": actions.astype(np.float32),
        "rewards": rewards,
        "masks": np.zeros(size, dtype=np.float32),
        "terminals": np.ones(size, dtype=np.float32),
        "next_observations": rng.normal(size=(size, OBS_DIM)).astype(np.float32),
    }


def sample_batch(dataset: dict[str, np.ndarray], batch_size: int, rng: np.random.Generator):
    idx = rng.integers(0, len(dataset["observations"]), size=batch_size)
    return {k: v[idx] for k, v in dataset.items()}


def mode_fractions(actions: np.ndarray) -> tuple[float, float]:
    """Fractions of actions near the good mode and near the bad mode (within 0.3 in each dim)."""
    actions = np.asarray(actions)
    near_good = np.all(np.abs(actions - MODE) < 0.3, axis=-1).mean()
    near_bad = np.all(np.abs(actions + MODE) < 0.3, axis=-1).mean()
    return float(near_good), float(near_bad)
