"""Shared test harness: a small offline contextual bandit and a scanned trainer for any agent.

The bandit has two action modes of different reward. Every transition is one step that ends its
episode (mask 0), so Q(s, a) = r(a). The data holds the two modes in equal measure: around +MODE
(reward 1) and around -MODE (reward 0). A policy that imitates the data puts half its mass on
each mode; one that maximises Q prefers +MODE.

Test files import these helpers with `from bandit import ...` (pytest puts tests/ on the path).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
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


def bandit_data(size: int = 4096, seed: int = 0) -> dict[str, jax.Array]:
    """The bandit on the device, with `next_actions` (unused by the bandit: masks are 0)."""
    data = {k: jnp.asarray(v) for k, v in make_bandit_dataset(size, seed).items()}
    data["next_actions"] = data["actions"]
    return data


@partial(jax.jit, static_argnames=("update", "steps", "batch_size"))
def scan_updates(update, state, data, key, steps: int, batch_size: int):
    """`steps` updates on batches drawn on the device (as the trainer does), in one XLA call."""
    size = data["observations"].shape[0]

    def body(state, key):
        idx_key, update_key = jax.random.split(key)
        idx = jax.random.randint(idx_key, (batch_size,), 0, size)
        return update(state, {k: v[idx] for k, v in data.items()}, update_key)

    return jax.lax.scan(body, state, jax.random.split(key, steps))


def train_on_bandit(
    agent, config, steps, seed=0, batch_size=64, size=4096, chunks=None, key_offset=1000
):
    """Train `agent` on the bandit: (state, last metrics as floats, data).

    `chunks=None`: one scan of `steps` updates from key seed + key_offset; else `chunks` scans
    of `steps` updates, each from the next split of that key.
    """
    data = bandit_data(size)
    state = agent.init(jax.random.PRNGKey(seed), {k: v[:2] for k, v in data.items()}, config)
    key = jax.random.PRNGKey(seed + key_offset)
    metrics = {}
    for _ in range(1 if chunks is None else chunks):
        if chunks is None:
            chunk_key = key
        else:
            key, chunk_key = jax.random.split(key)
        state, metrics = scan_updates(agent.update, state, data, chunk_key, steps, batch_size)
    return state, {k: float(v[-1]) for k, v in metrics.items()}, data


def train_chunks(agent, config, chunks, seed=0):
    """The diffusion/flow baselines' bandit runs: `chunks` x 50 updates of 256 on 2048 rows."""
    return train_on_bandit(
        agent, config, 50, seed, batch_size=256, size=2048, chunks=chunks, key_offset=100
    )
