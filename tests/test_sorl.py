"""SORL maths, gradients and update semantics (small networks; see test_sorl_learning.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import ACTION_DIM, OBS_DIM

from sorlab.agents import get_agent, sorl

SMALL = {"actor_hidden_dims": (32, 32), "value_hidden_dims": (32, 32), "batch_size": 64}


def small_config(**overrides) -> dict:
    config = sorl.default_config("cube-single-play-v0")
    config.update(SMALL)
    config.update(overrides)
    return config


def random_batch(size: int = 64, seed: int = 0, masks: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.normal(size=(size, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(size, ACTION_DIM)).astype(np.float32),
        "rewards": rng.normal(size=size).astype(np.float32),
        "masks": np.full(size, masks, np.float32),
        "terminals": np.zeros(size, np.float32),
        "next_observations": rng.normal(size=(size, OBS_DIM)).astype(np.float32),
    }


def actor_apply(state, obs, x, t, level):
    column = (x.shape[0], 1)
    return sorl._actor_def(state.config, state.action_dim).apply(
        {"params": state.params["actor"]},
        obs,
        x,
        jnp.full(column, t, jnp.float32),
        jnp.full(column, level, jnp.float32),
    )


# ----------------------------------------------------------------------------- config


def test_registry_and_per_environment_defaults():
    assert get_agent("sorl") is sorl
    assert sorl.default_config("antmaze-giant-navigate-singletask-task1-v0")["q_agg"] == "min"
    assert sorl.default_config("antmaze-giant-navigate-v0")["discount"] == 0.995
    assert sorl.default_config("cube-single-play-v0")["q_loss_coef"] == 10.0
    assert sorl.default_config("cube-double-play-singletask-task2-v0")["q_loss_coef"] == 50.0
    config = sorl.default_config("scene-play-v0")
    assert (config["lr"], config["batch_size"], config["tau"], config["alpha"]) == (
        1e-4,
        256,
        0.005,
        10.0,
    )
    assert config["denoise_timesteps"] == 8 and config["max_k_backprop"] == 8
    assert config["update_semantics"] == "released"
    with pytest.warns(UserWarning, match="puzzle-3x3-play"):
        generic = sorl.default_config("puzzle-3x3-play-v0")
    assert {k: generic[k] for k in ("discount", "q_agg", "q_loss_coef")} == (
        sorl.GENERIC_ENV_DEFAULTS
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("update_semantics", "tidy", "update_semantics"),
        ("q_agg", "max", "q_agg"),
        ("denoise_timesteps", 6, "denoise_timesteps"),
        ("max_k_backprop", 3, "max_k_backprop"),
        ("no_such_key", 1, "no_such_key"),
    ],
)
def test_bad_config_names_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        sorl.init(jax.random.PRNGKey(0), random_batch(), small_config(**{key: value}))


# ----------------------------------------------------------------------------- maths


def test_interpolation_and_target_velocity():
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal(size=(2, 5, 3)).astype(np.float32)
    eps = 1e-5
    np.testing.assert_allclose(sorl.interpolate(x0, x1, 0.0, eps), x0, rtol=1e-6)
    np.testing.assert_allclose(sorl.interpolate(x0, x1, 1.0, eps), x1 + eps * x0, rtol=1e-6)
    # The target velocity is the time derivative of the interpolation (it is linear in t).
    v = sorl.target_velocity(x0, x1, eps)
    slope = sorl.interpolate(x0, x1, 0.75, eps) - sorl.interpolate(x0, x1, 0.25, eps)
    np.testing.assert_allclose(slope / 0.5, v, rtol=1e-4, atol=1e-5)


def test_step_level():
    assert [sorl.step_level(k) for k in (1, 2, 4, 8, 16, 32)] == [0, 1, 2, 3, 4, 5]
    for bad in (0, 3, 12):
        with pytest.raises(ValueError, match=str(bad)):
            sorl.step_level(bad)


def test_euler_sampler_takes_k_steps_on_the_time_grid():
    seen = []

    def velocity(x, t):
        seen.append(t)
        return x  # dx/dt = x: Euler with k steps gives (1 + 1/k)^k x0

    x0 = jnp.array([1.0, -2.0])
    for k in (1, 2, 8):
        seen.clear()
        x = sorl.euler_sample(velocity, x0, k)
        assert seen == [i / k for i in range(k)]
        np.testing.assert_allclose(x, (1 + 1 / k) ** k * x0, rtol=1e-6)


def test_euler_sampler_backpropagates_through_every_step():
    # One parameter per step: d x_final / d theta_i = 1/k for every step i.
    k = 8

    def final(theta):
        return sorl.euler_sample(lambda x, t: x * 0 + theta[jnp.int32(t * k)], 0.0, k)

    np.testing.assert_allclose(jax.grad(final)(jnp.ones(k)), np.full(k, 1 / k), rtol=1e-6)


def test_consistency_levels_split_the_batch():
    levels = sorl.consistency_levels(256, 8)
    assert levels.shape == (256,)
    np.testing.assert_array_equal(levels[:85], 2)
    np.testing.assert_array_equal(levels[85:170], 1)
    np.testing.assert_array_equal(levels[170:], 0)  # 85 + the remainder of one row
    np.testing.assert_array_equal(np.bincount(sorl.consistency_levels(256, 16)), [64] * 4)


def test_self_consistency_target_is_two_half_steps():
    rng = np.random.default_rng(1)
    x_t = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    t = jnp.array([[0.0], [0.5], [0.25]])
    level = jnp.array([[0.0], [1.0], [2.0]])
    calls = []

    def velocity(x, t_, level_):
        calls.append((t_, level_))
        return jnp.sin(3 * x) + t_ * level_ + x**2  # depends on x, t and level

    target = sorl.self_consistency_target(velocity, x_t, t, level)
    # Both calls are at the finer level, at t and t + d/2.
    d = 2.0**-level
    np.testing.assert_allclose(calls[0][1], level + 1)
    np.testing.assert_allclose(calls[1][1], level + 1)
    np.testing.assert_allclose(calls[1][0], t + d / 2)
    # One step of size d with the target = two Euler half steps of the finer model.
    x_mid = x_t + d / 2 * velocity(x_t, t, level + 1)
    x_end = x_mid + d / 2 * velocity(x_mid, t + d / 2, level + 1)
    np.testing.assert_allclose(x_t + d * target, x_end, rtol=1e-5, atol=1e-6)


def test_q_loss_normalisation():
    q = jnp.array([1.0, -3.0, 2.0])
    assert float(sorl.q_loss(q, normalize=False)) == pytest.approx(0.0)
    q = jnp.array([1.0, 3.0, 2.0])
    assert float(sorl.q_loss(q, normalize=True)) == pytest.approx(-1.0)
    # The scale is a constant: the gradient is -1 / (n mean|q|) per element, not zero.
    np.testing.assert_allclose(jax.grad(sorl.q_loss)(q, True), np.full(3, -1 / 6), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(sorl.q_loss)(q, False), np.full(3, -1 / 3), rtol=1e-6)


def test_sampler_feeds_step_level_and_time_to_the_actor():
    batch = random_batch(8)
    state = sorl.init(jax.random.PRNGKey(0), batch, small_config())
    obs = jnp.asarray(batch["observations"])
    noise = jax.random.normal(jax.random.PRNGKey(1), (8, ACTION_DIM))

    def manual(k, level):
        x = noise
        for i in range(k):
            x = x + actor_apply(state, obs, x, i / k, level) / k
        return jnp.clip(x, -1, 1)

    def sample(config, k):
        return sorl.sample_actions(config, state.action_dim, state.params["actor"], obs, noise, k)

    def run(f, *args):  # jit: eager op-by-op dispatch is slow on a busy machine
        return jax.jit(lambda: f(*args))()

    for k in (1, 4, 16):  # 16 > M = 8: the released code feeds level 4, never trained
        np.testing.assert_allclose(
            run(sample, state.config, k), run(manual, k, np.log2(k)), atol=1e-5
        )
    capped = dict(state.config, cap_sampling_level=True)
    np.testing.assert_allclose(run(sample, capped, 16), run(manual, 16, 3.0), atol=1e-5)
    assert not np.allclose(run(manual, 16, 3.0), run(manual, 16, 4.0), atol=1e-4)


# ----------------------------------------------------------------------------- inference


def test_best_of_n_picks_the_critic_argmax_and_pairs_candidates_with_their_observation():
    batch = random_batch(6)
    state = sorl.init(jax.random.PRNGKey(0), batch, small_config(q_agg="min"))
    obs = jnp.asarray(batch["observations"])
    n, m_inf = 5, 4
    noise = jax.random.normal(jax.random.PRNGKey(2), (n, 6, ACTION_DIM))
    chosen = sorl.best_of_n(state, obs, noise, m_inf)
    assert chosen.shape == (6, ACTION_DIM)
    for i in range(6):
        # Candidate j of observation i, sampled from its own noise and scored at its own obs.
        cands = sorl.sample_actions(
            state.config,
            state.action_dim,
            state.params["actor"],
            jnp.repeat(obs[i : i + 1], n, 0),
            noise[:, i],
            m_inf,
        )
        scores = sorl.q_value(state, jnp.repeat(obs[i : i + 1], n, 0), cands, m_inf=m_inf)
        np.testing.assert_allclose(chosen[i], cands[jnp.argmax(scores)], atol=1e-6)
        # One observation at a time gives the same choice as the batch.
        alone = sorl.best_of_n(state, obs[i : i + 1], noise[:, i : i + 1], m_inf)
        np.testing.assert_allclose(chosen[i], alone[0], atol=1e-6)
    # The selection is not trivial: not every observation takes its first candidate. And the
    # released pairing (observations repeated row by row, candidates candidate-major) would
    # score candidates at other observations and choose differently.
    flat_cands = sorl.sample_actions(
        state.config,
        state.action_dim,
        state.params["actor"],
        jnp.tile(obs, (n, 1)),
        noise.reshape(n * 6, ACTION_DIM),
        m_inf,
    )
    right = sorl.q_value(state, jnp.tile(obs, (n, 1)), flat_cands, m_inf=m_inf).reshape(n, 6)
    wrong = sorl.q_value(state, jnp.repeat(obs, n, 0), flat_cands, m_inf=m_inf).reshape(n, 6)
    assert np.any(np.asarray(jnp.argmax(right, 0)) != 0)
    assert np.any(np.asarray(jnp.argmax(right, 0)) != np.asarray(jnp.argmax(wrong, 0)))


def test_act_shapes_bounds_and_inference_beyond_training_steps():
    batch = random_batch(16)
    state = sorl.init(jax.random.PRNGKey(0), batch, small_config())
    obs = jnp.asarray(batch["observations"])
    for m_inf, n in ((1, 1), (8, 1), (32, 4)):
        actions = sorl.act(state, obs, jax.random.PRNGKey(3), m_inf=m_inf, n=n)
        assert actions.shape == (16, ACTION_DIM)
        assert float(jnp.abs(actions).max()) <= 1.0
    single = sorl.act(state, obs[0], jax.random.PRNGKey(3), m_inf=2, n=3)
    assert single.shape == (ACTION_DIM,)
    with pytest.raises(ValueError, match="12"):
        sorl.act(state, obs, jax.random.PRNGKey(3), m_inf=12)
    assert sorl.q_value(state, obs, batch["actions"], m_inf=8, n=4).shape == (16,)
    # Without the released step-count input, the critic sees (obs, action) only.
    plain = sorl.init(jax.random.PRNGKey(0), batch, small_config(critic_k_input=False))
    first = jax.tree_util.tree_leaves(plain.params["critic"])
    assert {x.shape[-2] for x in first if x.ndim == 3} >= {OBS_DIM + ACTION_DIM}
    assert sorl.q_value(plain, obs, batch["actions"]).shape == (16,)


# ----------------------------------------------------------------------------- gradients


def test_q_loss_gradient_reaches_the_actor_through_all_k_steps():
    """The agent's actor-loss gradient (flow and consistency off) equals that of a hand-written
    k-step sampler; a sampler that stopped the gradient before the last step would differ."""
    config = small_config(flow_coef=0.0, alpha=0.0, q_loss_coef=1.0, normalize_q_loss=False)
    batch = {k: jnp.asarray(v) for k, v in random_batch(16).items()}
    state = sorl.init(jax.random.PRNGKey(0), batch, config)
    draws = sorl.actor_draws(state.config, batch, jax.random.PRNGKey(4))
    obs, noise, k = batch["observations"], draws["q_noise"], 8

    def agent_loss(actor):
        args = (state.params["critic"], state.target_params["actor"], batch, draws, k)
        return sorl.actor_loss(state.config, state.action_dim, actor, *args)[0]

    def reference(actor, stop_before_last: bool):
        net = sorl._actor_def(state.config, state.action_dim)
        x = noise
        for i in range(k):
            if stop_before_last and i == k - 1:
                x = jax.lax.stop_gradient(x)
            t, level = jnp.full((16, 1), i / k), jnp.full((16, 1), 3.0)
            x = x + net.apply({"params": actor}, obs, x, t, level) / k
        qs = sorl.critic_values(state.config, state.params["critic"], obs, jnp.clip(x, -1, 1), k)
        return -qs.mean()

    flat = lambda tree: jnp.concatenate([g.ravel() for g in jax.tree_util.tree_leaves(tree)])  # noqa: E731
    grad = flat(jax.jit(jax.grad(agent_loss))(state.params["actor"]))
    ref_grad = jax.jit(jax.grad(reference), static_argnums=1)
    full = flat(ref_grad(state.params["actor"], False))
    last_only = flat(ref_grad(state.params["actor"], True))
    assert float(jnp.linalg.norm(grad)) > 0
    np.testing.assert_allclose(grad, full, rtol=1e-4, atol=1e-6)
    assert float(jnp.linalg.norm(grad - last_only)) > 1e-2 * float(jnp.linalg.norm(grad))


@pytest.mark.parametrize("semantics", ["released", "clean"])
def test_update_semantics(semantics):
    """Released: the critic loss trains the actor too, one Adam state takes two steps per
    update, targets move toward the pre-update parameters. Clean: none of these."""
    # Actor-loss weights 0 (and a zero first Adam moment): any change of the actor comes from
    # the gradient of the critic loss through the TD target's next actions.
    config = small_config(
        update_semantics=semantics, flow_coef=0.0, alpha=0.0, q_loss_coef=0.0, max_k_backprop=1
    )
    batch = {k: jnp.asarray(v) for k, v in random_batch(64, masks=1.0).items()}
    state = sorl.init(jax.random.PRNGKey(0), batch, config)
    update = jax.jit(sorl.update)
    new, info = update(state, batch, jax.random.PRNGKey(1))
    # Same seed, same parameters.
    again, _ = update(sorl.init(jax.random.PRNGKey(0), batch, config), batch, jax.random.PRNGKey(1))
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)

    def moved(a, b):
        return jax.tree_util.tree_leaves(
            jax.tree_util.tree_map(lambda x, y: bool(jnp.any(x != y)), a, b)
        )

    assert all(moved(new.params["critic"], state.params["critic"]))
    assert np.isfinite(float(info["critic/loss"])) and np.isfinite(float(info["actor/loss"]))
    tau = config["tau"]
    if semantics == "released":
        assert float(info["critic/actor_grad_norm"]) > 0
        assert all(moved(new.params["actor"], state.params["actor"]))
        adam = new.opt_state[1][0]
        assert set(adam.mu) == {"actor", "critic"} and int(adam.count) == 2
        expected = state.params  # (equal to the targets at init)
    else:
        assert not any(moved(new.params["actor"], state.params["actor"]))
        assert set(new.opt_state) == {"actor", "critic"}
        assert [int(new.opt_state[n][1][0].count) for n in ("actor", "critic")] == [1, 1]
        expected = jax.tree_util.tree_map(
            lambda p, tp: tau * p + (1 - tau) * tp, new.params, state.target_params
        )
    for got, want in zip(
        jax.tree_util.tree_leaves(new.target_params),
        jax.tree_util.tree_leaves(expected),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_sixteen_training_steps():
    """M = 16 (finest level 4, consistency levels 3..0) and M_BTT = 16 (k up to 16)."""
    config = small_config(denoise_timesteps=16, max_k_backprop=16)
    batch = {k: jnp.asarray(v) for k, v in random_batch(64).items()}
    state = sorl.init(jax.random.PRNGKey(0), batch, config)
    assert sorl._k_values(state.config) == (1, 2, 4, 8, 16)
    # Every k branch of the update traces (compiling all five would only cost test time) ...
    new = jax.eval_shape(sorl.update, state, batch, jax.random.PRNGKey(0))[0]
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(state)
    # ... and k = 16, the costliest branch, gives finite losses and gradients.
    cfg, dim, params, targets = state.config, state.action_dim, state.params, state.target_params
    draws = sorl.actor_draws(cfg, batch, jax.random.PRNGKey(1))
    noise = draws["q_noise"]

    @jax.jit
    def losses(params):
        actor = sorl.actor_loss(
            cfg, dim, params["actor"], params["critic"], targets["actor"], batch, draws, 16
        )
        critic = sorl.critic_loss(
            cfg, dim, params["actor"], params["critic"], targets["critic"], batch, noise, 16
        )
        return actor[0] + critic[0]

    loss, grads = jax.value_and_grad(losses)(params)
    assert np.isfinite(float(loss))
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_vmapped_update_matches_one_seed_at_a_time():
    """Seeds vmapped as one program (the trainer's --seeds) give each seed's own update."""
    config = small_config(max_k_backprop=2)
    batch = {k: jnp.asarray(v) for k, v in random_batch(64).items()}
    states = [sorl.init(jax.random.PRNGKey(seed), batch, config) for seed in range(3)]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *states)
    keys = jax.random.split(jax.random.PRNGKey(9), 3)
    batched, info = jax.jit(jax.vmap(sorl.update, in_axes=(0, None, 0)))(stacked, batch, keys)
    update = jax.jit(sorl.update)
    for i in range(3):
        alone, alone_info = update(states[i], batch, keys[i])
        assert int(info["actor/k"][i]) == int(alone_info["actor/k"])
        for a, b in zip(
            jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(alone), strict=True
        ):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)
