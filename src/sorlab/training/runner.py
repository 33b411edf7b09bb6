"""The pure jitted chunk scan: the one scan of the repo (the trainer, the benchmark and the
tests all run it).

Randomness depends only on (seed, step): update `s` (1-based) uses `fold_in(train_key, s)`,
split into the batch-index key and the update key. A run resumed from a checkpoint therefore
makes exactly the same updates as an uninterrupted run, whatever the chunk size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any


def root_keys(seed: int):
    """(init_key, train_key) of a run; the update at step s uses fold_in(train_key, s)."""
    import jax

    root = jax.random.PRNGKey(seed)
    return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)


def make_chunk_fn(agent: ModuleType, batch_size: int, length: int) -> Callable:
    """A pure function (state, data, train_key, start_step) -> (state, metrics, finite).

    It applies updates start_step+1 ... start_step+length; `metrics` holds each update's
    metrics stacked along a leading axis of size `length`; `finite` says whether every float
    leaf of the new state is finite. Jit it (or vmap it over seeds) before use.
    """
    import jax
    import jax.numpy as jnp

    def chunk(state, data, train_key, start_step):
        size = data["observations"].shape[0]

        def body(state, step):
            batch_key, update_key = jax.random.split(jax.random.fold_in(train_key, step))
            idx = jax.random.randint(batch_key, (batch_size,), 0, size)
            batch = {k: jnp.take(v, idx, axis=0) for k, v in data.items()}
            state, metrics = agent.update(state, batch, update_key)
            return state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

        steps = start_step + 1 + jnp.arange(length, dtype=jnp.int32)
        state, metrics = jax.lax.scan(body, state, steps)
        return state, metrics, tree_is_finite(state)

    return chunk


def tree_is_finite(tree) -> Any:
    import jax
    import jax.numpy as jnp

    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


# Compiled chunks, shared by every ChunkRunner in this process (tests and --seeds reruns).
_COMPILED: dict[tuple, Any] = {}


class ChunkRunner:
    """Compiles the chunk function ahead of time once per chunk length and input types, and runs it.

    Compiled programs are cached per process, keyed by the agent, batch size, chunk length and
    the inputs' tree structure (which holds the agent's static config), shapes and dtypes.
    """

    def __init__(self, agent: ModuleType, batch_size: int, vmapped: bool = False):
        self.agent, self.batch_size, self.vmapped = agent, batch_size, vmapped
        self.compile_s = 0.0

    def get(self, length: int, state, data, train_key, start_step):
        import jax

        args = (state, data, train_key, start_step)
        leaves, treedef = jax.tree.flatten(args)
        avals = tuple((tuple(x.shape), str(x.dtype)) for x in leaves)
        key = (self.agent.__name__, self.batch_size, length, self.vmapped, treedef, avals)
        if key not in _COMPILED:
            start = time.perf_counter()
            fn = make_chunk_fn(self.agent, self.batch_size, length)
            if self.vmapped:
                fn = jax.vmap(fn, in_axes=(0, None, 0, None))
            _COMPILED[key] = jax.jit(fn).lower(*args).compile()
            self.compile_s += time.perf_counter() - start
        return _COMPILED[key]

    def __call__(self, length: int, state, data, train_key, start_step: int):
        import jax.numpy as jnp

        start_step = jnp.int32(start_step)
        return self.get(length, state, data, train_key, start_step)(
            state, data, train_key, start_step
        )
