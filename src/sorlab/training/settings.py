"""`sorlab train`'s settings: RunSettings is the one place of its defaults (argparse reads them
from the dataclass), and the agent config a run resolves from `--set KEY=VALUE` overrides.

JAX-free: the workflow's helpers import `eval_m_inf` from here.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from types import ModuleType
from typing import Any

from sorlab.checkpoints import to_tuples
from sorlab.data.transitions import ACTION_CLIP_EPS
from sorlab.errors import ConfigError, TrainError


class SettingsError(ConfigError, TrainError):
    """A `sorlab train` setting that cannot run (nothing ran): a usage error (exit status 2),
    and a TrainError for callers of the library."""


@dataclass
class RunSettings:
    agent: str
    dataset: str  # a dataset file PATH.npz (OGBench format, or already relabelled)
    task: int
    steps: int
    out: str  # run directory; '{seed}' is replaced by the seed
    seed: int = 1
    overrides: list[str] = field(default_factory=list)
    # None: no evaluation; 0: only at the end; I: every I steps and at the end.
    eval_interval: int | None = None
    eval_episodes: int = 50
    eval_m_inf: int | None = None  # None: the agent's default_eval_m_inf(config), else 1
    checkpoint_interval: int = 100_000  # also at the end; 0: only at the end
    log_interval: int = 5_000
    chunk: int = 1_000
    keep_checkpoints: int = 2
    restart_if_changed: bool = False
    progress: bool = True
    data_fraction: float = 1.0
    data_seed: int = 0
    action_clip_eps: float = ACTION_CLIP_EPS

    @property
    def eval_period(self) -> int:
        """Steps between periodic evaluations as the loop uses them (0: none)."""
        if self.eval_interval is None:
            return 0
        return self.eval_interval or self.steps


def defaults() -> dict[str, Any]:
    """{field: default} of the RunSettings fields that have one (argparse's defaults)."""
    out = {}
    for f in fields(RunSettings):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def check_settings(s: RunSettings) -> None:
    """SettingsError for a setting out of range (before anything is loaded)."""
    if s.steps < 1:
        raise SettingsError(f"--steps must be >= 1, got {s.steps}")
    for name in ("eval_interval", "checkpoint_interval", "log_interval"):
        if (getattr(s, name) or 0) < 0:
            raise SettingsError(f"--{name.replace('_', '-')} must be >= 0")
    if s.chunk < 1:
        raise SettingsError(f"--chunk must be >= 1, got {s.chunk}")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SettingsError(
            f"--seeds {text!r}: expected comma-separated integers, e.g. 1,2,3"
        ) from None
    if not seeds:
        raise SettingsError(f"--seeds {text!r}: no seed given")
    return seeds


# ----------------------------------------------------------------------------- agent config


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Give an override the type of its default (YAML reads `1e-4` as a string, `1` as an int)."""
    if isinstance(default, bool) or default is None:
        return value
    if isinstance(default, float) and isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise SettingsError(f"--set {key}={value!r}: expected a number") from None
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return to_tuples(value)


def parse_overrides(items: list[str], defaults: dict, agent_name: str) -> dict:
    """`KEY=VALUE` strings -> {key: value}; values are YAML, unknown keys are an error."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--set {item!r}: expected KEY=VALUE")
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise SettingsError(
                f"unknown config key {key!r} for agent {agent_name!r}; its keys: {known}"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise SettingsError(f"--set {item!r}: cannot parse the value as YAML ({err})") from None
        overrides[key] = _coerce(key, value, defaults[key])
    return overrides


def resolve_agent_config(
    agent: ModuleType, agent_name: str, env: str, overrides: list[str]
) -> dict:
    defaults = to_tuples(dict(agent.default_config(env)))
    return {**defaults, **parse_overrides(overrides, defaults, agent_name)}


def get_agent(name: str) -> ModuleType:
    """The registered agent module; SettingsError naming the known ones."""
    from sorlab.agents import get_agent as _get_agent

    try:
        return _get_agent(name)
    except ValueError as err:
        raise SettingsError(str(err)) from None


def env_name(dataset: str, task: int) -> str:
    from sorlab.data import env_name as _env_name

    try:
        return _env_name(dataset, task)
    except ValueError as err:
        raise SettingsError(f"dataset {dataset!r}, task {task}: {err}") from None


def eval_m_inf(agent, agent_config: dict, requested: int | None) -> int:
    """Inference steps of the periodic evaluations: as requested, else the agent's default
    (SORL: its training discretisation M, the point Table 1 reports), else 1."""
    if requested is not None:
        if requested < 1:
            raise SettingsError(f"--eval-m-inf must be >= 1, got {requested}")
        return int(requested)
    default = getattr(agent, "default_eval_m_inf", None)
    return int(default(agent_config)) if default else 1
