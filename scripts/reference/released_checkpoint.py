"""Evaluate a checkpoint of the released SORL code with sorlab's evaluator.

It separates training from evaluation when the two codes' success differs: if the released
code's own parameters score the same in `sorlab evaluate`'s loop as in the released loop, the
two evaluations agree and any gap comes from training. Two steps, two environments:

    # 1. with the released code's python (its pins; needs jax to unpickle): params -> npz
    REF_PYTHON scripts/reference/released_checkpoint.py dump RUN/params_30000.pkl params.npz
    # 2. with sorlab's python: load into a SORL state and evaluate at M_inf 1, 2, 4, 8
    .venv/bin/python scripts/reference/released_checkpoint.py evaluate params.npz \\
        --dataset cube-single-play-v0 --task 1 --hidden 128 128 128 --lr 3e-4 --episodes 50

The released parameter names map onto sorlab's as in tests/test_equivalence.py (`mlp` ->
`MLP_0`, `value_net` -> the critic's ensemble MLP); shapes are checked.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys

import numpy as np

RENAMES = {"mlp": "MLP_0"}


def dump(pkl: str, out: str) -> None:
    """params_<step>.pkl of the released main.py -> a flat npz ('modules_actor/mlp/Dense_0/kernel')."""
    with open(pkl, "rb") as f:
        params = pickle.load(f)["agent"]["network"]["params"]
    flat: dict[str, np.ndarray] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else key)
        else:
            flat[prefix] = np.asarray(node)

    walk(params, "")
    np.savez(out, **flat)
    print(f"{len(flat)} arrays -> {out}")


def to_sorlab(flat: dict[str, np.ndarray], module: str, template: dict) -> dict:
    """The released module's parameters under sorlab's names, shape-checked against `template`."""
    import jax

    tree: dict = {}
    for key, value in flat.items():
        if not key.startswith(f"modules_{module}/"):
            continue
        node = tree
        *parents, leaf = key.split("/")[1:]
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    out = {
        (next(iter(template)) if name == "value_net" else RENAMES.get(name, name)): sub
        for name, sub in tree.items()
    }
    got = jax.tree_util.tree_map(np.shape, out)
    want = jax.tree_util.tree_map(np.shape, template)
    if got != want:
        sys.exit(f"released {module} parameters {got} do not fit sorlab's {want}")
    return out


def evaluate(args: argparse.Namespace) -> None:
    import jax

    from sorlab.agents import sorl
    from sorlab.data.transitions import example_batch
    from sorlab.evaluation.policy import evaluate_policy

    with np.load(args.npz) as f:
        flat = {k: f[k] for k in f.files}
    config = sorl.default_config(args.dataset)
    config.update(
        lr=args.lr, actor_hidden_dims=tuple(args.hidden), value_hidden_dims=tuple(args.hidden)
    )
    last = max(k for k in flat if k.startswith("modules_actor/mlp/Dense_") and k.endswith("bias"))
    action_dim = flat[last].shape[0]
    obs_dim = flat["modules_actor/mlp/Dense_0/kernel"].shape[0] - action_dim - 2  # + t, level
    state = sorl.init(jax.random.PRNGKey(0), example_batch(obs_dim, action_dim), config)
    params = {name: to_sorlab(flat, name, state.params[name]) for name in ("actor", "critic")}
    state = state.replace(params=jax.tree_util.tree_map(jax.numpy.asarray, params))
    results = {}
    for m_inf in args.m_inf:
        result = evaluate_policy(
            sorl, state, args.dataset, args.task, args.episodes, args.seed, m_inf=m_inf, n=1
        )
        results[m_inf] = result["success"]
        print(f"M_inf {m_inf}: success {result['success']:.3f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="released params_<step>.pkl -> npz (released python)")
    d.add_argument("pkl")
    d.add_argument("out")
    e = sub.add_parser("evaluate", help="evaluate the npz with sorlab's evaluator")
    e.add_argument("npz")
    e.add_argument("--dataset", default="cube-single-play-v0")
    e.add_argument("--task", type=int, default=1)
    e.add_argument("--hidden", type=int, nargs="+", default=[128, 128, 128])
    e.add_argument("--lr", type=float, default=3e-4)
    e.add_argument("--m-inf", type=int, nargs="+", default=[1, 2, 4, 8])
    e.add_argument("--episodes", type=int, default=50)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default=None, help="JSON file of {M_inf: success}")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.pkl, args.out)
    else:
        evaluate(args)


if __name__ == "__main__":
    main()
