"""Which OGBench datasets exist, which of them we can regenerate offline, and their official sizes.

Sizes and noise levels follow OGBench's published commands (data_gen_scripts/commands.sh).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sorlab.errors import DatasetError  # noqa: F401  (raised here; imported from here by callers)

# Dataset types OGBench publishes for state-based environments.
DATASET_TYPES = ("play", "noisy", "navigate", "stitch", "explore")
VAL_SUFFIX = "-val"


@dataclass(frozen=True)
class GenSpec:
    """How to regenerate one dataset offline with OGBench's scripted oracles."""

    env_id: str  # goal-conditioned gymnasium id used for data collection, e.g. cube-single-v0
    kind: str  # 'play' (manipulation plan oracles) or 'navigate' (maze subgoal oracle)
    episodes: int  # official number of training episodes (the val file gets episodes // 10)
    episode_steps: int  # official steps per episode (observations per episode)
    noise: float  # oracle action noise
    noise_smoothing: float = 0.0  # temporal smoothing of the plan oracle's noise ('play' only)


def _play(env_id: str, episodes: int = 1000) -> GenSpec:
    return GenSpec(env_id, "play", episodes, 1001, noise=0.1, noise_smoothing=0.5)


def _navigate(env_id: str, episodes: int = 1000, steps: int = 1001) -> GenSpec:
    return GenSpec(env_id, "navigate", episodes, steps, noise=0.5)


GENERATABLE: dict[str, GenSpec] = {
    "cube-single-play-v0": _play("cube-single-v0"),
    "cube-double-play-v0": _play("cube-double-v0"),
    "cube-triple-play-v0": _play("cube-triple-v0", 3000),
    "cube-quadruple-play-v0": _play("cube-quadruple-v0", 5000),
    "scene-play-v0": _play("scene-v0"),
    "puzzle-3x3-play-v0": _play("puzzle-3x3-v0"),
    "puzzle-4x4-play-v0": _play("puzzle-4x4-v0"),
    "puzzle-4x5-play-v0": _play("puzzle-4x5-v0", 3000),
    "puzzle-4x6-play-v0": _play("puzzle-4x6-v0", 5000),
    "pointmaze-medium-navigate-v0": _navigate("pointmaze-medium-v0"),
    "pointmaze-large-navigate-v0": _navigate("pointmaze-large-v0"),
    "pointmaze-giant-navigate-v0": _navigate("pointmaze-giant-v0", 500, 2001),
    "pointmaze-teleport-navigate-v0": _navigate("pointmaze-teleport-v0"),
}

_NAME_RE = re.compile(
    r"^(?P<env>[a-z0-9x-]+?)-(?P<type>" + "|".join(DATASET_TYPES) + r")-(?P<ver>v\d+)$"
)


def split_name(dataset: str) -> tuple[str, str, str]:
    """'cube-single-play-v0' -> ('cube-single', 'play', 'v0'); DatasetError if not an OGBench name."""
    match = _NAME_RE.match(dataset)
    if match is None or dataset.startswith("visual-"):
        raise DatasetError(
            f"{dataset!r} is not a state-based OGBench dataset name "
            f"(expected <env>-<{'|'.join(DATASET_TYPES)}>-v0, e.g. cube-single-play-v0)"
        )
    return match["env"], match["type"], match["ver"]


def check_known(dataset: str) -> str:
    """Return the goal-conditioned env id of an OGBench dataset, or raise DatasetError naming it."""
    import gymnasium
    import ogbench  # noqa: F401  (registers the environments)

    env, _, ver = split_name(dataset)
    env_id = f"{env}-{ver}"
    if env_id not in gymnasium.registry:
        raise DatasetError(
            f"unknown OGBench dataset {dataset!r}: no environment {env_id!r} in ogbench"
        )
    return env_id


def official_steps(dataset: str, val: bool = False) -> int | None:
    """Steps (rows) in OGBench's published file for `dataset` (its -val file if `val`), where
    the published size is known here; None otherwise."""
    spec = GENERATABLE.get(dataset)
    if spec is None:
        return None
    episodes = spec.episodes // 10 if val else spec.episodes
    return episodes * spec.episode_steps


def gen_spec(dataset: str) -> GenSpec:
    """The generation recipe for `dataset`, or a DatasetError listing what can be generated."""
    if dataset in GENERATABLE:
        return GENERATABLE[dataset]
    supported = ", ".join(GENERATABLE)
    hint = ""
    try:
        check_known(dataset)
        hint = (
            f" It is an official OGBench dataset: fetch it with `sorlab data download {dataset}`."
        )
    except DatasetError:
        pass
    raise DatasetError(f"cannot generate {dataset!r} offline.{hint} Supported: {supported}")
