"""The agent interface, checked for EVERY registered agent (sorlab.agents.AGENTS): a new agent
is tested here as soon as it is registered. Its own maths go in tests/test_agents_<name>.py.

Per agent, on the bandit (tests/bandit.py) with networks shrunk to width <= 32:
init/update/act shapes, finite metrics named `critic/...`, `actor/...` (or `value/...`), the
same numbers for the same keys, an orbax checkpoint round trip as the trainer writes it, and
`update` vmapped over seeds equal to one seed at a time; `act` vmapped over observations as the
evaluator calls it.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import ACTION_DIM, bandit_data

from sorlab.agents import AGENTS, get_agent, scales_at_inference

ENV = "cube-single-play-singletask-task2-v0"
BATCH = 16
METRIC_PREFIXES = ("critic/", "actor/", "value/")


def small_config(agent) -> dict:
    """The agent's defaults for ENV with every `*hidden_dims` layer at most 32 wide."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = dict(agent.default_config(ENV))
    for key, value in config.items():
        if key.endswith("hidden_dims"):
            config[key] = tuple(min(int(d), 32) for d in value)
    return config


def inference_settings(name: str) -> list[dict]:
    """What the evaluator passes: m_inf and n (only SORL-like agents use them)."""
    if scales_at_inference(name):
        return [{"m_inf": 1, "n": 1}, {"m_inf": 2, "n": 3}]
    return [{"m_inf": 1, "n": 1}]


@pytest.fixture(scope="module", params=list(AGENTS))
def setup(request):
    name = request.param
    agent = get_agent(name)
    config = small_config(agent)
    data = bandit_data(BATCH)
    example = {k: np.asarray(v[:1]) for k, v in data.items()}
    state = agent.init(jax.random.PRNGKey(0), example, config)
    update = jax.jit(agent.update)
    new_state, metrics = update(state, data, jax.random.PRNGKey(1))
    return name, agent, config, data, state, update, new_state, metrics


def _leaves(tree):
    return jax.tree_util.tree_leaves(tree)


def _assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_default_config(setup):
    name, agent, *_ = setup
    config = agent.default_config(ENV)
    assert isinstance(config, dict) and "batch_size" in config, (
        f"{name}.default_config(env) must return a dict with 'batch_size': the trainer samples "
        "batches of that size (even an agent that reads no data needs one)"
    )
    assert all(isinstance(k, str) for k in config), (
        f"{name}.default_config: every key must be a string (`--set key=value` names them)"
    )


def test_update_keeps_the_state_structure_and_reports_finite_metrics(setup):
    name, _, _, _, state, _, new_state, metrics = setup
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state), (
        f"{name}.update must return a state of the same structure as init's: the trainer scans "
        "update over many steps and checkpoints the state (lax.scan needs a fixed carry)"
    )
    for old, new in zip(_leaves(state), _leaves(new_state), strict=True):
        assert jnp.shape(old) == jnp.shape(new) and jnp.result_type(old) == jnp.result_type(new), (
            f"{name}.update changed a state leaf's shape or dtype ({jnp.shape(old)} "
            f"{jnp.result_type(old)} -> {jnp.shape(new)} {jnp.result_type(new)}): lax.scan "
            "needs the same carry at every step"
        )
    assert any(
        not np.array_equal(a, b) for a, b in zip(_leaves(state), _leaves(new_state), strict=True)
    ), (
        f"{name}.update left every state value unchanged: an update that changes nothing "
        "trains nothing (an agent without parameters still needs some state that changes, "
        "e.g. a step counter)"
    )
    assert metrics and all(k.startswith(METRIC_PREFIXES) for k in metrics), (
        f"{name}.update must return at least one metric, each named critic/..., actor/... or "
        f"value/... (metrics.csv groups them so); got {sorted(metrics)}"
    )
    for key, value in metrics.items():
        assert jnp.shape(value) == (), f"{name} metric {key} must be a scalar (one CSV column)"
        assert np.isfinite(float(value)), f"{name} metric {key} is not finite after one update"


def test_same_keys_same_numbers_other_keys_other_numbers(setup):
    name, agent, config, data, state, update, new_state, metrics = setup
    again, metrics_again = update(state, data, jax.random.PRNGKey(1))
    _assert_trees_equal(new_state, again)  # same state, batch and key: a run repeats exactly
    _assert_trees_equal(metrics, metrics_again)
    example = {k: np.asarray(v[:1]) for k, v in data.items()}
    other = agent.init(jax.random.PRNGKey(7), example, config)
    assert any(
        not np.array_equal(a, b) for a, b in zip(_leaves(state), _leaves(other), strict=True)
    ), (
        f"{name}.init gave the same state for two keys: different seeds must start differently, "
        "or a mean over seeds measures one run (an agent without random parameters can keep, "
        "e.g., its own PRNG key in the state)"
    )


def test_act_shapes_and_determinism(setup):
    name, agent, _, data, _, _, state, _ = setup
    obs = data["observations"]
    for inference in inference_settings(name):
        actions = np.asarray(agent.act(state, obs, jax.random.PRNGKey(2), **inference))
        assert actions.shape == (BATCH, ACTION_DIM), (
            f"{name}.act must return one action per observation row: shape {actions.shape}, "
            f"want {(BATCH, ACTION_DIM)}"
        )
        assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0), (
            f"{name}.act must return finite actions in [-1, 1] (OGBench's action space)"
        )
        again = agent.act(state, obs, jax.random.PRNGKey(2), **inference)
        np.testing.assert_array_equal(
            actions, np.asarray(again), err_msg=f"{name}.act: same key, other actions"
        )


def test_act_under_vmap_as_the_evaluator_calls_it(setup):
    """One observation per call, vmapped over observations with one key each."""
    name, agent, _, data, _, _, state, _ = setup
    obs = data["observations"][:4]
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    for inference in inference_settings(name):

        def one(o, key, inference=inference):
            return agent.act(state, o[None], key, **inference)[0]

        batched = np.asarray(jax.jit(jax.vmap(one))(obs, keys))
        singles = np.stack([np.asarray(one(o, k)) for o, k in zip(obs, keys, strict=True)])
        assert batched.shape == (4, ACTION_DIM)
        np.testing.assert_allclose(
            batched, singles, atol=1e-5,
            err_msg=f"{name}.act vmapped over observations (as the evaluator calls it) must equal "
            "one observation at a time",
        )  # fmt: skip


def test_checkpoint_round_trip(setup, tmp_path):
    """Saved and restored as the trainer does (orbax StandardSave of {"agent": state, ...});
    the restored state acts and updates exactly as the original."""
    import orbax.checkpoint as ocp

    _, agent, config, data, _, update, state, _ = setup
    options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
    manager = ocp.CheckpointManager(tmp_path / "checkpoints", options=options)
    manager.save(3, args=ocp.args.StandardSave({"agent": state}))
    manager.wait_until_finished()
    example = {k: np.asarray(v[:1]) for k, v in data.items()}
    abstract = jax.eval_shape(lambda: agent.init(jax.random.PRNGKey(0), example, config))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"agent": abstract})
    restored = manager.restore(3, args=ocp.args.StandardRestore(abstract))["agent"]
    manager.close()
    _assert_trees_equal(state, restored)
    _assert_trees_equal(
        update(state, data, jax.random.PRNGKey(4)), update(restored, data, jax.random.PRNGKey(4))
    )


def test_update_vmapped_over_seeds_equals_one_seed_at_a_time(setup):
    """As the trainer's --seeds: states and keys stacked, the batch shared."""
    _, agent, config, data, _, update, state, _ = setup
    example = {k: np.asarray(v[:1]) for k, v in data.items()}
    other = agent.init(jax.random.PRNGKey(5), example, config)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), state, other)
    keys = jnp.stack([jax.random.PRNGKey(6), jax.random.PRNGKey(7)])
    out, metrics = jax.jit(jax.vmap(agent.update, in_axes=(0, None, 0)))(stacked, data, keys)
    for i, single in enumerate([state, other]):
        want, want_metrics = update(single, data, keys[i])
        got = jax.tree.map(lambda x, i=i: x[i], (out, metrics))
        for x, y in zip(_leaves(got), _leaves((want, want_metrics)), strict=True):
            np.testing.assert_allclose(
                np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5,
                err_msg="update vmapped over seeds (sorlab train --seeds) must equal one seed at "
                "a time: no Python-level branching on values, no state shared across seeds",
            )  # fmt: skip


def test_registry_is_jax_free_and_lists_every_agent_module():
    """The workflow's helpers import the registry: it must not import JAX. Every module in
    agents/ (not `_`-prefixed) is registered, and no agent module imports another agent."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, sorlab.agents as a; a.scales_at_inference('sorl'); print('jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    # The paper's baselines act in one way; SORL scales (a new agent may do either).
    baselines = {"bc", "iql", "rebrac", "idql", "srpo", "cac", "fawac", "fbrac", "ifql", "fql"}
    assert scales_at_inference("sorl")
    assert not [n for n in baselines & set(AGENTS) if scales_at_inference(n)]
    folder = Path(__import__("sorlab.agents").agents.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    assert modules == {AGENTS[n].module.rsplit(".", 1)[1] for n in AGENTS}
    for path in [*folder.glob("*.py"), *folder.glob("_lib/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                assert not (parts[:2] == ["sorlab", "agents"] and len(parts) > 2
                            and parts[2] != "_lib"), f"{path.name} imports {name}"  # fmt: skip
                if isinstance(node, ast.ImportFrom) and node.module == "sorlab.agents":
                    assert all(a.name == "_lib" for a in node.names), path.name
