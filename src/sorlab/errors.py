"""One error family. Every error a user can fix derives from `SorlabError`; the CLIs print its
message on one line (no traceback) and exit with its `exit_code`:

- 2: the command line or the config is wrong (nothing ran), as argparse's own usage errors;
- 1: the inputs or the outputs are wrong (a dataset, a run directory, results/, a diverged run).

stdlib only: the workflow's Python helpers import it.
"""

from __future__ import annotations

USAGE_EXIT = 2
INPUT_EXIT = 1


class SorlabError(Exception):
    """A problem the user can fix; the message names the file, key or value and says what to do."""

    exit_code = INPUT_EXIT


class ConfigError(SorlabError, ValueError):
    """A config key or value the workflow cannot run with; the message names it."""

    exit_code = USAGE_EXIT


class DatasetError(SorlabError, ValueError):
    """A dataset name, file or download that cannot be used; the message names it and says why."""


class RunDirError(SorlabError):
    """A run directory that cannot be used (busy, unwritable, damaged); the message says why."""


class TrainError(SorlabError):
    """A problem with the run's inputs (agent, dataset, --set, run directory)."""


class CheckpointWriteError(TrainError):
    """A checkpoint could not be written (full disk, quota, read-only folder)."""


class DivergenceError(TrainError):
    """A metric or a parameter became NaN/inf; the last good checkpoint is kept."""


class ResultsError(SorlabError, ValueError):
    """A file under results/ is missing where required, or malformed; the message starts with
    its path."""
