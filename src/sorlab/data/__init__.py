"""OGBench datasets: regenerate (oracles) or download, then load with singletask rewards."""

from sorlab.data.load import env_name, load_training_data, make_env, validate_file
from sorlab.data.names import GENERATABLE, DatasetError

__all__ = [
    "DatasetError",
    "GENERATABLE",
    "env_name",
    "load_training_data",
    "make_env",
    "validate_file",
]
