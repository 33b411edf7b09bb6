"""The SLURM cluster test runs only through `make test-slurm` (SORLAB_SLURM_TEST=1).

It installs Debian packages and starts daemons as root, so the default `make test` / `pytest`
does not collect this directory at all (it is ignored, not skipped).
"""

import os

if os.environ.get("SORLAB_SLURM_TEST") != "1":
    collect_ignore_glob = ["test_*.py"]
