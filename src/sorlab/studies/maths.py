"""The studies' maths: discounted Monte-Carlo returns and Q-vs-return statistics.

Pure numpy, so the tests check them on hand-made arrays.
"""

from __future__ import annotations

import math

import numpy as np

from sorlab.data.subsample import episode_bounds


def mc_returns(
    rewards: np.ndarray, masks: np.ndarray, terminals: np.ndarray, discount: float
) -> tuple[np.ndarray, np.ndarray]:
    """Discounted returns G_t = r_t + discount * m_t * G_{t+1} within each episode.

    This is the quantity TD learning with target r + discount * m * Q(s', a') estimates for the
    behaviour that produced the rows. At an episode's last row G = r (nothing is known beyond).
    Returns (G, exact): `exact[t]` is True when G_t does not depend on the cut-off, i.e. a row
    with mask 0 (the return chain ends) comes at or after t within the episode.
    """
    rewards = np.asarray(rewards, np.float64).reshape(-1)
    masks = np.asarray(masks, np.float64).reshape(-1)
    if not (len(rewards) == len(masks) == len(np.asarray(terminals).reshape(-1))):
        raise ValueError(
            f"rewards, masks and terminals differ in length: "
            f"{len(rewards)}, {len(masks)}, {len(np.asarray(terminals).reshape(-1))}"
        )
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    returns = np.zeros_like(rewards)
    exact = np.zeros(len(rewards), bool)
    for start, stop in episode_bounds(terminals):
        g, ended = 0.0, False
        for t in range(stop - 1, start - 1, -1):
            if masks[t] < 0.5:
                g, ended = rewards[t], True
            else:
                g = rewards[t] + discount * g
            returns[t], exact[t] = g, ended
    return returns, exact


def truncation_ok(
    terminals: np.ndarray, exact: np.ndarray, discount: float, tol: float = 0.05
) -> np.ndarray:
    """Rows whose return is trustworthy: exact, or far enough from the episode's cut-off that
    discount**(steps left) <= tol (the missing tail weighs at most `tol` of a full return)."""
    ok = np.asarray(exact, bool).copy()
    for start, stop in episode_bounds(terminals):
        left = stop - np.arange(start, stop)
        ok[start:stop] |= discount**left <= tol
    return ok


def bias_correlation(q: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """How Q estimates match returns: mean(Q - G), RMSE, Pearson r, Spearman rho, and n.

    NaN statistics when there are fewer than two points or a constant input (r undefined).
    """
    q = np.asarray(q, np.float64).reshape(-1)
    g = np.asarray(g, np.float64).reshape(-1)
    if len(q) != len(g):
        raise ValueError(f"q and returns differ in length: {len(q)} vs {len(g)}")
    keep = np.isfinite(q) & np.isfinite(g)
    q, g = q[keep], g[keep]
    out = {
        "n": int(len(q)),
        "q_mean": float(q.mean()) if len(q) else math.nan,
        "return_mean": float(g.mean()) if len(g) else math.nan,
        "bias": float(np.mean(q - g)) if len(q) else math.nan,
        "rmse": float(np.sqrt(np.mean((q - g) ** 2))) if len(q) else math.nan,
        "pearson": math.nan,
        "spearman": math.nan,
    }
    if len(q) >= 2 and q.std() > 0 and g.std() > 0:
        out["pearson"] = float(np.corrcoef(q, g)[0, 1])
        out["spearman"] = float(np.corrcoef(_ranks(q), _ranks(g))[0, 1])
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]
