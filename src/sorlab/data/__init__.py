"""OGBench datasets: regenerate (oracles) or download, then load with singletask rewards."""

from sorlab.data.load import env_name, load_training_data, make_env, validate_file
from sorlab.data.names import GENERATABLE, DatasetError
from sorlab.data.subsample import episode_bounds, subsample_episodes

__all__ = [
    "DatasetError",
    "GENERATABLE",
    "env_name",
    "episode_bounds",
    "load_training_data",
    "make_env",
    "subsample_episodes",
    "validate_file",
]
