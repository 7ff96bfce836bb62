"""`canary validate` refuses every hostile input of issue #15: exit 1, each file judged, each
problem naming its field, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hostile_inputs import HOSTILE, write_all

CANARY = str(Path(sys.executable).parent / "canary")


def test_every_hostile_file_is_refused_naming_its_field(tmp_path: Path) -> None:
    paths = write_all(tmp_path)
    run = subprocess.run(
        [CANARY, "validate", *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    for hostile, path in zip(HOSTILE, paths, strict=True):
        prefix = f"{path}: {hostile.field}: " if hostile.field else f"{path}: "
        mine = [line for line in lines if line.startswith(prefix)]
        assert mine, f"{hostile.file}: no problem at {hostile.field!r} in {run.stderr}"
        assert any(hostile.hint in line for line in mine), mine


def test_json_output_judges_each_file_apart(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text((Path(__file__).parents[2] / "examples" / "podinfo-haproxy.yaml").read_text())
    paths = [*write_all(tmp_path), good]
    run = subprocess.run(
        [CANARY, "validate", "-o", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    report = json.loads(run.stdout)
    verdicts = {Path(f["file"]).name: f["valid"] for f in report["files"]}
    assert verdicts == {**{h.file: False for h in HOSTILE}, "good.yaml": True}
