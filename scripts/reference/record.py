"""Record equivalence fixtures from the authors' released code, for tests/test_equivalence.py.

Run it with the Python of a virtualenv that has the released code's own pins (jax 0.4.38,
flax 0.10.2, optax 0.2.4, distrax 0.1.5, ml_collections, absl-py; docs/equivalence.md says how
to build one), never with sorlab's; sorlab is not imported here:

    REF_PYTHON scripts/reference/record.py --sorl-repo PATH/TO/SORL --fql-repo PATH/TO/fql

For each case (an agent and a small configuration: 2 x 32 networks, a fixed 32-row batch of
synthetic transitions) it writes `<out>/<case>.npz` holding
  batch/*        the batch every update uses,
  init/*         the released agent's initial parameters (its ModuleDict names),
  rng/update     the key each of the 3 updates consumes (the second half of split(agent.rng)),
  draws/*        for SORL, every random draw of each update (see "How draws are injected"),
  metrics/<i>/*  the metrics the released update returns at update i = 1, 2, 3,
  final/*        parameters after 3 updates, final_opt/{mu,nu,count} the Adam state,
  act/*          sampled actions after the 3 updates, with their seeds and (SORL) noises
                 (SORL: the M = 16 case, every M_inf from 1 to 16),
  meta           JSON: the case, the released config, the checkouts' commits, the versions.

How draws are injected. The FQL-family agents in sorlab (FQL, IQL, ReBRAC, IFQL) split an
update's key exactly as the released code does, so the test passes them the recorded update key.
Both codes then draw the same numbers because this script switches jax's
`jax_threefry_partitionable` on, the default of the jax sorlab pins (0.4.38 defaults to off:
the same key would give other numbers). SORL in sorlab splits its key differently (it draws
k, the noises and the flow times in another order), so this script reproduces the released
SORL update's key splitting and records what it draws: the critic's k index and TD-target
noise, and the actor's flow-matching (t, x0), self-consistency (t, x0) and Q-loss (k index,
noise) draws. The test feeds them to `sorlab.agents.sorl.update_from_draws`. To cover every
k, a SORL case searches the first agent seed (deterministically) whose 3 updates draw the
wanted k in both steps.

Files are deterministic: arrays in sorted order, stored uncompressed with a fixed zip
timestamp, so re-running on the same checkouts reproduces them byte for byte.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib
import io
import json
import os
import subprocess
import sys
import zipfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)

BATCH_SIZE, OBS_DIM, ACTION_DIM = 32, 12, 5
NUM_UPDATES = 3
HIDDEN = 32  # 2 x 32 networks keep the fixtures small
ACTION_CLIP = 1e-5  # the released loaders clip dataset actions to +-(1 - 1e-5)

SORL_BASE = dict(
    actor_layer_size=HIDDEN,
    actor_num_layers=2,
    value_layer_size=HIDDEN,
    value_num_layers=2,
    batch_size=BATCH_SIZE,
    q_loss_coef=10.0,
    discount=0.99,
    q_agg="mean",
)
SMALL = dict(actor_hidden_dims=(HIDDEN, HIDDEN), value_hidden_dims=(HIDDEN, HIDDEN))

# case name -> (repository, agent module, released config overrides, SORL k to force or None)
CASES = {
    "sorl_k1": ("sorl", "sorl", SORL_BASE, 1),
    "sorl_k2": ("sorl", "sorl", SORL_BASE, 2),
    "sorl_k4": ("sorl", "sorl", SORL_BASE, 4),
    "sorl_k8": ("sorl", "sorl", SORL_BASE, 8),
    "sorl_mixed_k": ("sorl", "sorl", SORL_BASE, "mixed"),
    "sorl_m16": (
        "sorl",
        "sorl",
        dict(
            SORL_BASE,
            denoise_timesteps=16,
            max_k_backprop=16,
            q_agg="min",
            discount=0.995,
            q_loss_coef=100.0,
        ),
        16,
    ),
    "fql": ("fql", "fql", dict(SMALL, batch_size=BATCH_SIZE, alpha=10.0, q_agg="min"), None),
    "iql": ("fql", "iql", dict(SMALL, batch_size=BATCH_SIZE, alpha=1.0), None),
    "rebrac": (
        "fql",
        "rebrac",
        dict(SMALL, batch_size=BATCH_SIZE, alpha_actor=0.1, alpha_critic=0.01),
        None,
    ),
    "ifql": ("fql", "ifql", dict(SMALL, batch_size=BATCH_SIZE, num_samples=8), None),
}
AGENT_CLASSES = {
    "sorl": "SORLAgent",
    "fql": "FQLAgent",
    "iql": "IQLAgent",
    "rebrac": "ReBRACAgent",
    "ifql": "IFQLAgent",
}


def fixed_batch() -> dict[str, np.ndarray]:
    """32 synthetic transitions; actions clipped like the released loaders clip datasets."""
    rs = np.random.RandomState(0)

    def actions():
        a = rs.uniform(-1.2, 1.2, (BATCH_SIZE, ACTION_DIM))
        return np.clip(a, -1 + ACTION_CLIP, 1 - ACTION_CLIP).astype(np.float32)

    return {
        "observations": rs.normal(size=(BATCH_SIZE, OBS_DIM)).astype(np.float32),
        "actions": actions(),
        "rewards": -(rs.uniform(size=BATCH_SIZE) < 0.8).astype(np.float32),
        "masks": (rs.uniform(size=BATCH_SIZE) > 0.1).astype(np.float32),
        "next_observations": rs.normal(size=(BATCH_SIZE, OBS_DIM)).astype(np.float32),
        "next_actions": actions(),
    }


# ----------------------------------------------------------------------------- released code


def use_repo(path: str) -> None:
    """Make `path`'s top-level packages (agents, utils) the importable ones. Kept imported
    while the repository stays the same, so that jax's compilation caches stay warm."""
    if sys.path and sys.path[0] == path:
        return
    for name in list(sys.modules):
        if name.split(".")[0] in ("agents", "utils", "envs"):
            del sys.modules[name]
    sys.path[:] = [path] + [p for p in sys.path if p not in USED_REPOS]
    USED_REPOS.add(path)


USED_REPOS: set[str] = set()


def commit(path: str) -> str:
    out = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        keys = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        out[f"{prefix}/{keys}"] = np.asarray(leaf)
    return out


def adam_state(opt_state):
    """The ScaleByAdamState inside an optax chain's state."""
    if hasattr(opt_state, "mu") and hasattr(opt_state, "nu"):
        return opt_state
    if isinstance(opt_state, tuple):
        for part in opt_state:
            found = adam_state(part)
            if found is not None:
                return found
    return None


# ----------------------------------------------------------------------------- SORL draws


def sorl_k_indices(agent_rng, num_k: int):
    """(critic, actor) k indices of the 3 updates of an agent whose rng is `agent_rng`, drawn
    as the released SORL update draws them."""
    out = []
    for _ in range(NUM_UPDATES):
        agent_rng, rng = jax.random.split(agent_rng)
        critic_idx = jax.random.randint(jax.random.split(rng, 2)[0], (), 0, num_k)
        q_rng = jax.random.split(jax.random.split(rng)[1], 3)[2]
        actor_idx = jax.random.randint(jax.random.split(q_rng, 2)[0], (), 0, num_k)
        out.append((critic_idx, actor_idx))
    return jnp.array(out)  # (3, 2)


@functools.cache
def _k_index_search(num_k: int):
    def indices(seed):
        return sorl_k_indices(jax.random.split(jax.random.PRNGKey(seed))[0], num_k)

    return jax.jit(jax.vmap(indices))


def sorl_seed(num_k: int, wanted) -> int:
    """First agent seed whose updates draw the wanted k (an int: every draw; 'mixed': the
    critic's and the actor's k differ in every update)."""
    find = _k_index_search(num_k)
    for start in range(0, 1 << 24, 1 << 16):
        idx = np.asarray(find(jnp.arange(start, start + (1 << 16))))
        if wanted == "mixed":
            ok = np.all(idx[:, :, 0] != idx[:, :, 1], axis=1)
        else:
            ok = np.all(idx == int(np.log2(wanted)), axis=(1, 2))
        if ok.any():
            return int(start + np.argmax(ok))
    raise SystemExit(f"record.py: no seed draws k={wanted}")


def sorl_draws(rng, config) -> dict[str, np.ndarray]:
    """Every random draw of one released SORL update that consumes `rng` (its key splitting)."""
    b, a = BATCH_SIZE, ACTION_DIM
    m = config["denoise_timesteps"]
    num_k = len(config["k_values"])
    # critic_loss(rng): switch_rng, idx_rng
    switch_rng, idx_rng = jax.random.split(rng, 2)
    draws = {
        "critic_k_index": jax.random.randint(switch_rng, (), 0, num_k),
        "critic_noise": jax.random.normal(idx_rng, (b, a)),
    }
    # actor step: rng, subrng = split(rng); actor_loss(subrng) -> consistency, fm, q
    _, subrng = jax.random.split(rng)
    consistency_rng, fm_rng, q_rng = jax.random.split(subrng, 3)
    t_rng, x_rng = jax.random.split(consistency_rng, 2)
    log2_sections = np.log2(m).astype(np.int32)
    dt_base = jnp.repeat(log2_sections - 1 - jnp.arange(log2_sections), b // log2_sections)
    dt_base = jnp.concatenate([dt_base, jnp.zeros(b - dt_base.shape[0])])
    dt_sections = jnp.power(2, dt_base)
    t_sc = jax.random.randint(t_rng, (b,), minval=0, maxval=dt_sections).astype(jnp.float32)
    draws["t_sc"] = (t_sc / dt_sections)[:, None]
    draws["level_sc"] = dt_base[:, None].astype(jnp.float32)
    draws["x0_sc"] = jax.random.normal(x_rng, (b, a))
    fm_x_rng, fm_t_rng = jax.random.split(fm_rng, 2)
    t_fm = jax.random.randint(fm_t_rng, (b,), minval=0, maxval=m).astype(np.float32)
    draws["t_fm"] = (t_fm / m)[:, None]
    draws["x0_fm"] = jax.random.normal(fm_x_rng, (b, a))
    q_switch_rng, q_idx_rng = jax.random.split(q_rng, 2)
    draws["actor_k_index"] = jax.random.randint(q_switch_rng, (), 0, num_k)
    draws["q_noise"] = jax.random.normal(q_idx_rng, (b, a))
    return {k: np.asarray(v) for k, v in draws.items()}


def sorl_actions(agent, batch, max_steps: int) -> dict[str, np.ndarray]:
    """Released sample_actions for M_inf in 1 ... max_steps, N in {1, 4}, 4 observations, and
    N = 4 for one observation; with each call's seed and the noises it draws."""
    out = {}
    obs4 = batch["observations"][:4]
    m_inf = 1
    while m_inf <= max_steps:
        for n, obs in ((1, obs4), (4, obs4), (4, obs4[0])):
            name = f"act/m{m_inf}_n{n}" + ("_single" if obs.ndim == 1 else "")
            seed = jax.random.PRNGKey(1000 + 10 * m_inf + n + obs.ndim)
            rows = 1 if obs.ndim == 1 else obs.shape[0]
            noise = jnp.stack(
                [jax.random.normal(k, (rows, ACTION_DIM)) for k in jax.random.split(seed, n)]
            )
            actions = agent.sample_actions(obs, seed=seed, inference_timesteps=m_inf, n=n)
            out |= {f"{name}/seed": seed, f"{name}/noise": noise, f"{name}/actions": actions}
            out[f"{name}/observations"] = obs
        m_inf *= 2
    return {k: np.asarray(v) for k, v in out.items()}


def fql_family_actions(agent, module: str, batch) -> dict[str, np.ndarray]:
    """Released sample_actions with recorded seeds (IQL and ReBRAC at temperature 0 and 1;
    IFQL one observation at a time, as its released sampler takes one)."""
    out = {}
    obs4 = batch["observations"][:4]
    if module == "ifql":
        for i in range(2):
            seed = jax.random.PRNGKey(2000 + i)
            out[f"act/obs{i}/seed"] = seed
            out[f"act/obs{i}/observations"] = obs4[i]
            out[f"act/obs{i}/actions"] = agent.sample_actions(obs4[i], seed=seed)
    elif module == "fql":
        seed = jax.random.PRNGKey(2000)
        out |= {"act/t1/seed": seed, "act/t1/observations": obs4}
        out["act/t1/actions"] = agent.sample_actions(obs4, seed=seed)
    else:
        for temperature in (0, 1):
            seed = jax.random.PRNGKey(2000 + temperature)
            name = f"act/t{temperature}"
            out |= {f"{name}/seed": seed, f"{name}/observations": obs4}
            out[f"{name}/actions"] = agent.sample_actions(
                obs4, seed=seed, temperature=float(temperature)
            )
    return {k: np.asarray(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- one case


def record_case(name: str, repos: dict[str, str]) -> dict[str, np.ndarray]:
    repo_key, module, overrides, forced_k = CASES[name]
    use_repo(repos[repo_key])
    agent_module = importlib.import_module(f"agents.{module}")
    config = agent_module.get_config()
    config.update(copy.deepcopy(overrides))
    batch = fixed_batch()
    if module != "rebrac":
        batch.pop("next_actions")
    seed = 0
    if module == "sorl":
        num_k = int(np.log2(config["max_k_backprop"])) + 1
        seed = sorl_seed(num_k, forced_k)
    agent = getattr(agent_module, AGENT_CLASSES[module]).create(
        seed, batch["observations"][:1], batch["actions"][:1], config
    )
    jbatch = {k: jnp.asarray(v) for k, v in batch.items()}
    arrays = {f"batch/{k}": v for k, v in batch.items()}
    arrays |= flatten(agent.network.params, "init")

    keys, draws, metrics = [], [], {}
    for i in range(1, NUM_UPDATES + 1):
        update_key = jax.random.split(agent.rng)[1]
        keys.append(np.asarray(update_key))
        if module == "sorl":
            draws.append(sorl_draws(update_key, agent.config))
        if module == "rebrac":
            agent, info = agent.update(jbatch, full_update=(i % config["actor_freq"] == 0))
        else:
            agent, info = agent.update(jbatch)
        metrics |= {f"metrics/{i}/{k}": np.asarray(v, np.float32) for k, v in info.items()}
    arrays["rng/update"] = np.stack(keys)
    for key in draws[0] if draws else ():
        arrays[f"draws/{key}"] = np.stack([d[key] for d in draws])
    arrays |= metrics

    params = agent.network.params
    arrays |= flatten(params, "final")
    adam = adam_state(agent.network.opt_state)
    for moment in ("mu", "nu"):
        tree = getattr(adam, moment)
        for module_name, sub in tree.items():
            leaves = jax.tree_util.tree_leaves(sub)
            if module_name.startswith("modules_target_"):
                # Targets sit in the released Adam state but never get a gradient.
                assert all(not np.any(np.asarray(x)) for x in leaves), module_name
                continue
            arrays |= flatten(sub, f"final_opt/{moment}/{module_name}")
    arrays["final_opt/count"] = np.asarray(adam.count)

    if module == "sorl" and name == "sorl_m16":
        arrays |= sorl_actions(agent, batch, config["denoise_timesteps"])
    else:
        arrays |= fql_family_actions(agent, module, batch)

    released_config = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in agent.config.items()
        if isinstance(v, int | float | str | bool | tuple | list) and k != "ob_dims"
    }
    meta = {
        "case": name,
        "agent": module,
        "agent_seed": seed,
        "forced_k": forced_k,
        "num_updates": NUM_UPDATES,
        "released_config": released_config,
        "repository": {"sorl": "nico-espinosadice/SORL", "fql": "seohongpark/fql"}[repo_key],
        "commit": commit(repos[repo_key]),
        "versions": {
            m: importlib.import_module(m).__version__ for m in ("jax", "flax", "optax", "numpy")
        },
        "jax_threefry_partitionable": True,
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return arrays


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez-compatible, but byte-reproducible: sorted names, fixed timestamps, stored."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sorl-repo", required=True, help="checkout of nico-espinosadice/SORL")
    parser.add_argument("--fql-repo", required=True, help="checkout of seohongpark/fql")
    parser.add_argument("--out", default="tests/fixtures/equivalence", help="output folder")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    repos = {"sorl": os.path.abspath(args.sorl_repo), "fql": os.path.abspath(args.fql_repo)}
    for key, path in repos.items():
        if not os.path.isfile(os.path.join(path, "agents", f"{key}.py")):
            raise SystemExit(
                f"record.py: --{key}-repo {path} has no agents/{key}.py; "
                "pass a checkout of the released repository"
            )
    os.makedirs(args.out, exist_ok=True)
    for name in args.cases:
        arrays = record_case(name, repos)
        path = os.path.join(args.out, f"{name}.npz")
        write_npz(path, arrays)
        print(f"{path}: {len(arrays)} arrays, {os.path.getsize(path) // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
