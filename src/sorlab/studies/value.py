"""Value-learning study for one run: the critic's Q against the discounted return obtained.

Two sets of state-actions: the training dataset's (returns of the behaviour policy, computed
from its rewards, masks and episode ends) and fresh evaluation episodes of the trained policy
(returns it actually obtained). A critic that tracks the returns on both (small bias, high
correlation) while success is low points at policy extraction; a critic that does not points at
value learning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sorlab import layout
from sorlab.studies.maths import bias_correlation, mc_returns, truncation_ok

Q_BATCH = 4096  # rows per jitted critic call (padded, so one compilation)


def critic_fn(agent, m_inf: int):
    """A jitted (state, obs, actions) -> (B,) Q function, or None when the agent has no critic."""
    import jax

    q_value = getattr(agent, "q_value", None)
    if q_value is None:
        return None
    return jax.jit(lambda state, obs, actions: q_value(state, obs, actions, m_inf=m_inf))


def batched_q(q_fn, state, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Q over many rows in fixed-size padded chunks."""
    out = []
    for start in range(0, len(obs), Q_BATCH):
        o, a = obs[start : start + Q_BATCH], actions[start : start + Q_BATCH]
        pad = Q_BATCH - len(o)
        o = np.concatenate([o, np.repeat(o[-1:], pad, 0)]) if pad else o
        a = np.concatenate([a, np.repeat(a[-1:], pad, 0)]) if pad else a
        out.append(np.asarray(q_fn(state, o, a))[: Q_BATCH - pad])
    return np.concatenate(out) if out else np.zeros(0)


def rollout(
    agent, state, dataset: str, task: int, episodes: int, seed: int, m_inf: int, n: int
) -> dict[str, np.ndarray]:
    """Run `episodes` evaluation episodes side by side, recording every step.

    Episode i resets with seed `seed + i` and draws its policy noise as `sorlab evaluate` does
    (sorlab.evaluation.policy.policy_fn), so its success matches the evaluator's for the same seed.
    Returns the steps concatenated episode after episode: observations, actions, rewards,
    masks (0 where the env terminated, i.e. the task was solved), terminals (1 on each
    episode's last step) and the per-episode success.
    """
    import jax

    from sorlab.data import make_env
    from sorlab.evaluation.policy import policy_fn

    policy = policy_fn(agent, int(m_inf), int(n))
    root_key = jax.random.key(0)
    envs = [make_env(dataset, task) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    ids = seed + np.arange(episodes)
    live = np.ones(episodes, bool)
    steps: list[list[tuple]] = [[] for _ in range(episodes)]
    success = np.zeros(episodes)
    t = 0
    while live.any():
        actions = np.asarray(policy(state, obs, ids, np.full(episodes, t), root_key))
        for i in np.flatnonzero(live):
            next_obs, reward, terminated, truncated, info = envs[i].step(actions[i])
            done = terminated or truncated
            steps[i].append((obs[i].copy(), actions[i], reward, 0.0 if terminated else 1.0, done))
            obs[i] = next_obs
            if done:
                live[i] = False
                success[i] = float(info["success"])
        t += 1
    for env in envs:
        env.close()
    rows = [row for episode in steps for row in episode]
    return {
        "observations": np.stack([r[0] for r in rows]).astype(np.float32),
        "actions": np.stack([r[1] for r in rows]).astype(np.float32),
        "rewards": np.array([r[2] for r in rows], np.float64),
        "masks": np.array([r[3] for r in rows], np.float64),
        "terminals": np.array([float(r[4]) for r in rows], np.float64),
        "success": success,
    }


def _stats(q: np.ndarray, g: np.ndarray, ok: np.ndarray) -> dict[str, Any]:
    return {"all": bias_correlation(q, g), "trusted": bias_correlation(q[ok], g[ok])}


def value_study(
    run_dir: str | os.PathLike,
    episodes: int = 10,
    seed: int = 0,
    m_inf: int | None = None,
    n: int = 1,
    dataset_points: int = 5000,
    tol: float = 0.05,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(summary, points) of the run's critic against Monte-Carlo returns.

    `m_inf` (SORL: Euler steps of the acting policy and the critic's step input) defaults to
    the training M (`denoise_timesteps`) when the agent has one, else 1. `dataset_points`
    dataset rows are drawn at random (seeded) for the dataset comparison. "trusted" rows are
    those whose return does not depend on where the episode was cut off (see
    sorlab.studies.maths.truncation_ok with `tol`).
    """
    from sorlab.checkpoints import load_run
    from sorlab.data.transitions import load_dataset

    agent, state, config = load_run(run_dir)
    agent_config = config["agent_config"]
    discount = float(agent_config.get("discount", 0.99))
    if m_inf is None:
        m_inf = int(agent_config.get("denoise_timesteps", 1))
    q_fn = critic_fn(agent, m_inf)

    data = load_dataset(config["dataset"], config["task"], config.get("action_clip_eps", 0.0))
    g_data, exact = mc_returns(data["rewards"], data["masks"], data["terminals"], discount)
    ok_data = truncation_ok(data["terminals"], exact, discount, tol)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(g_data), size=min(dataset_points, len(g_data)), replace=False))

    roll = rollout(agent, state, config["dataset_name"], config["task"], episodes, seed, m_inf, n)
    g_eval, exact_eval = mc_returns(roll["rewards"], roll["masks"], roll["terminals"], discount)
    ok_eval = truncation_ok(roll["terminals"], exact_eval, discount, tol)

    if q_fn is not None:
        q_data = batched_q(q_fn, state, data["observations"][pick], data["actions"][pick])
        q_eval = batched_q(q_fn, state, roll["observations"], roll["actions"])
    else:  # no critic (e.g. BC): nothing to compare, the returns are still reported
        q_data = np.full(len(pick), np.nan)
        q_eval = np.full(len(g_eval), np.nan)

    summary = {
        "run_dir": str(run_dir),
        "agent": config["agent"],
        "dataset_name": config["dataset_name"],
        "task": config["task"],
        "seed": config["seed"],
        "discount": discount,
        "m_inf": m_inf,
        "n": n,
        "episodes": episodes,
        "eval_seed": seed,
        "has_critic": q_fn is not None,
        "success": float(roll["success"].mean()),
        "per_episode_success": roll["success"].tolist(),
        "dataset": _stats(q_data, g_data[pick], ok_data[pick]),
        "evaluation": _stats(q_eval, g_eval, ok_eval),
        "trusted_tol": tol,
    }
    points = {
        "dataset_q": q_data,
        "dataset_return": g_data[pick],
        "dataset_trusted": ok_data[pick],
        "eval_q": q_eval,
        "eval_return": g_eval,
        "eval_trusted": ok_eval,
        "eval_terminals": roll["terminals"],
    }
    return summary, points


def write_value_study(out: str | os.PathLike, summary: dict, points: dict) -> None:
    """`out` (JSON summary) and the points beside it (`.npz`), each written atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    npz = out.with_suffix(".npz")
    tmp = layout.tmp_path(npz)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **points)
    os.replace(tmp, npz)
    layout.write_json(out, summary)
