"""What every test shares: the programs of the virtual environment come first on PATH.

scripts/bootstrap.sh installs helm and kubectl into the venv's bin; tests that run them (and
`canary`) find them there even when the venv is not activated (`.venv/bin/pytest ...`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_VENV_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _VENV_BIN:
    os.environ["PATH"] = os.pathsep.join([_VENV_BIN, os.environ.get("PATH", "")])
