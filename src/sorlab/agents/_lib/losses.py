"""Losses the agents share: TD targets, ensemble aggregation, Q maximisation, expectiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Q_AGGS = ("mean", "min")


def aggregate(qs: jax.Array, how: str) -> jax.Array:
    """Combine ensemble outputs (E, ...) into (...) with "min" or "mean"."""
    if how == "min":
        return qs.min(axis=0)
    if how == "mean":
        return qs.mean(axis=0)
    raise ValueError(f"q_agg must be one of {Q_AGGS}, got {how!r}")


def td_target(batch: dict, discount: float, next_q: jax.Array) -> jax.Array:
    """r + discount * mask * next_q."""
    return batch["rewards"] + discount * batch["masks"] * next_q


def td_loss(qs: jax.Array, target: jax.Array) -> tuple[jax.Array, dict]:
    """Mean squared TD error of every ensemble member to the (stopped) target, and its info."""
    loss = jnp.square(qs - jax.lax.stop_gradient(target)).mean()
    return loss, {"critic/loss": loss, "critic/q_mean": qs.mean(), "critic/q_max": qs.max()}


def q_maximisation_loss(
    q: jax.Array, normalize: bool, *, eps: float = 0.0, reciprocal: bool = False
) -> jax.Array:
    """-mean(Q); with `normalize`, scaled by 1 / stop_grad(mean |Q| + eps).

    The released codes differ in how: FBRAC/CAC divide with eps 1e-6, SORL divides with no
    eps, FQL multiplies by the stopped reciprocal (`reciprocal=True`). Each passes its own.
    """
    loss = -q.mean()
    if not normalize:
        return loss
    scale = jnp.abs(q).mean()
    if eps:
        scale = scale + eps
    if reciprocal:
        return jax.lax.stop_gradient(1 / scale) * loss
    return loss / jax.lax.stop_gradient(scale)


def expectile_loss(
    diff: jax.Array, expectile: float, *, adv: jax.Array | None = None, tie_positive: bool
) -> jax.Array:
    """Asymmetric squared loss: weight `expectile` where the advantage (`adv`, default `diff`)
    is positive, 1 - expectile where negative; at exactly zero `expectile` when
    `tie_positive` (IQL, IFQL: adv >= 0) else 1 - expectile (IDQL, SRPO: diff > 0)."""
    adv = diff if adv is None else adv
    positive = adv >= 0 if tie_positive else adv > 0
    weight = jnp.where(positive, expectile, 1.0 - expectile)
    return weight * jnp.square(diff)


def advantage_weights(adv: jax.Array, alpha: float, max_weight: float = 100.0) -> jax.Array:
    """AWR/AWAC weights exp(alpha * adv), clipped above at `max_weight` (released: 100)."""
    return jnp.minimum(jnp.exp(adv * alpha), max_weight)


def iql_value_critic_losses(
    target_qs: jax.Array, v: jax.Array, qs: jax.Array, next_v: jax.Array, batch: dict, config
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """IQL as released in FQL (IQL, IFQL): (value loss, critic loss, TD target).

    V: expectile regression onto the min of the target critics (`target_qs`, (2, B));
    Q: the SUM over both members of the squared error to r + discount * mask * V(s').
    """
    target_q = jnp.min(target_qs, axis=0)
    value_loss = expectile_loss(target_q - v, config["expectile"], tie_positive=True).mean()
    q_target = td_target(batch, config["discount"], next_v)
    critic_loss = jnp.sum(jnp.square(qs - q_target), axis=0).mean()
    return value_loss, critic_loss, q_target


def iql_value_loss(target_qs: jax.Array, v: jax.Array, expectile: float) -> jax.Array:
    """IDQL/SRPO: V regresses to the expectile of min over the target critics (no gradient
    into Q); the mean over the batch."""
    q = jax.lax.stop_gradient(target_qs.min(axis=0))
    return expectile_loss(q - v, expectile, tie_positive=False).mean()


def iql_critic_loss(qs: jax.Array, rewards, masks, next_v, discount: float) -> jax.Array:
    """IDQL/SRPO: Q regresses to r + discount * mask * V(s') (no gradient into V); the MEAN
    over members and batch."""
    target = jax.lax.stop_gradient(rewards + discount * masks * next_v)
    return jnp.square(qs - target).mean()


def iql_forward(critic, value, params: dict, target_critic_params, batch: dict):
    """The forward passes of IQL's value learning: (target Q(s, a), V(s), V(s') with the value
    network held fixed, Q(s, a)); `params` holds "value" and "critic"."""
    obs, actions = batch["observations"], batch["actions"]
    target_qs = critic.apply({"params": target_critic_params}, obs, actions)
    v = value.apply({"params": params["value"]}, obs)
    next_v = value.apply(
        {"params": jax.lax.stop_gradient(params["value"])}, batch["next_observations"]
    )
    qs = critic.apply({"params": params["critic"]}, obs, actions)
    return target_qs, v, next_v, qs
