"""Quiet output: the third-party warnings every command would print, silenced by default.

Importing OGBench's MuJoCo environments warns that X11's DISPLAY is missing (glfw, although
sorlab renders offscreen) and that gymnasium casts the action bounds to float32: harmless, and
printed by every `sorlab` command and env worker. They are ignored unless the user asked for
warnings (`python -W ...` or PYTHONWARNINGS), which then decide as usual.
"""

from __future__ import annotations

import sys
import warnings

# Modules whose warnings say nothing a sorlab user can act on.
QUIET_MODULES = ("glfw", "gymnasium")


def quiet_third_party_warnings() -> None:
    """Ignore the QUIET_MODULES' warnings, unless warnings were configured (-W, PYTHONWARNINGS)."""
    if sys.warnoptions:
        return
    for module in QUIET_MODULES:
        warnings.filterwarnings("ignore", module=rf"{module}(\..*)?$")
