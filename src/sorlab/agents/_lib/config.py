"""The hyperparameters most agents share, each defined and commented once.

`shared_config(env_name, **values)` returns them in the order every agent's config (and so its
config.json) lists them; an agent overrides a value by keyword and adds its own keys after.
"""

from __future__ import annotations

from typing import Any

from sorlab.agents._lib.envs import discount_for


def shared_config(env_name: str, **values: Any) -> dict:
    """The eight shared keys with the released FQL-family defaults, `values` overriding them."""
    config = dict(
        lr=3e-4,  # Adam learning rate (one Adam over all networks)
        batch_size=256,  # transitions per update
        actor_hidden_dims=(512, 512, 512, 512),  # policy network's hidden layers
        value_hidden_dims=(512, 512, 512, 512),  # critic (and value) networks' hidden layers
        layer_norm=True,  # LayerNorm in the critics (and value network)
        actor_layer_norm=False,  # LayerNorm in the policy network
        discount=discount_for(env_name),  # 0.995 on long-horizon families, else 0.99
        tau=0.005,  # soft target update rate
    )
    unknown = set(values) - set(config)
    if unknown:
        raise KeyError(f"not a shared config key: {', '.join(sorted(unknown))}")
    return config | values


def insert_after(config: dict, key: str, **values: Any) -> dict:
    """`config` with `values` inserted right after `key` (keeps an agent's released key order)."""
    out: dict = {}
    for k, v in config.items():
        out[k] = v
        if k == key:
            out.update(values)
    return out
