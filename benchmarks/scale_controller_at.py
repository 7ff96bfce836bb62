"""The scale benchmark's controller process on another commit's canary: a *before* for a
side-by-side run (docs/benchmarks.md, "Controller scale").

``CANARY_SOURCE`` names a directory holding that commit's tree (``git archive <commit> | tar
-x -C DIR``); its ``canary`` package is imported instead of this checkout's, and this
checkout's scale_controller.py measures it (the same call log and tick log for both)::

    CANARY_SOURCE=/tmp/before python benchmarks/scale.py --controller-script \\
        benchmarks/scale_controller_at.py --sizes 1000 --no-write --json before.json
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    source = os.environ.get("CANARY_SOURCE")
    if not source or not (Path(source) / "canary" / "__init__.py").is_file():
        sys.exit("CANARY_SOURCE must name a directory holding a canary/ package (git archive)")
    sys.path.insert(0, str(Path(source).resolve()))
    import canary

    if not Path(canary.__file__).resolve().is_relative_to(Path(source).resolve()):
        sys.exit(f"canary was imported from {canary.__file__}, not {source}")
    script = HERE / "scale_controller.py"
    sys.argv[0] = str(script)
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
