"""`canary validate`, run as a user runs it: the installed console script in a subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = ROOT / "tests" / "fixtures" / "invalid"


def _canary() -> str:
    beside_python = Path(sys.executable).parent / "canary"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("canary")
    assert found, "the `canary` console script is not installed"
    return found


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def canary(*args: str | Path) -> Run:
    done = subprocess.run(
        [_canary(), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Expected:
    path: str  # the field path printed; "" when the file as a whole is wrong
    hints: tuple[str, ...]  # words of the message that tell the user how to fix it


# Every broken fixture, the exact field the loader names, and what the message must say.
BROKEN = {
    "weight-150.yaml": Expected(
        "spec.strategy.canary.weights[1]", ("less than or equal to 100", "(got 150)")
    ),
    "weights-go-down.yaml": Expected(
        "spec.strategy.canary.weights", ("weights must rise", "20 follows 50", "increasing order")
    ),
    "unknown-provider.yaml": Expected(
        "spec.provider.name", ("'istio', 'linkerd', 'gateway-api' or 'haproxy'", "(got 'nginx')")
    ),
    "interval-abc.yaml": Expected(
        "spec.analysis.interval", ("'abc' is not a duration", "a number and a unit", "'30s'")
    ),
    "missing-target.yaml": Expected(
        "spec.targetRef", ("required field is missing", "add 'targetRef'")
    ),
    "typo-field.yaml": Expected(
        "spec.strategy.canary.stepWieght", ("unknown field", "did you mean 'stepWeight'?")
    ),
    "unsupported-route-setting.yaml": Expected(
        "spec.service.route.circuitBreaker.outlierDetection",
        ("provider 'gateway-api' cannot honour", "remove it or choose another provider"),
    ),
    "mirror-with-canary.yaml": Expected(
        "spec.strategy.mirror", ("works with blueGreen only", "remove 'mirror' or use blueGreen")
    ),
    "wrong-api-version.yaml": Expected(
        "apiVersion", ("served as 'canary.dev/v1alpha1'", "'flagger.app/v1beta1'")
    ),
    "deployment-only.yaml": Expected(
        "kind", ("no canary resource", "found Deployment", "expected one of Rollout")
    ),
    "rich-markup-in-value.yaml": Expected(
        "spec.analysis.interval", ("'[/x]' is not a duration", "a number and a unit")
    ),
    "empty.yaml": Expected("", ("empty", "no YAML documents")),
    "binary.bin": Expected("", ("a binary file", "not YAML or JSON")),
    "not-yaml.yaml": Expected("", ("not valid YAML", "line 10, column 11")),
    "list-document.yaml": Expected("", ("a resource is a mapping", "not list")),
    "deeply-nested.yaml": Expected("", ("nested too deeply",)),
}


def _line(name: str, expected: Expected) -> str:
    source = f"tests/fixtures/invalid/{name}"
    return f"{source}: {expected.path}: " if expected.path else f"{source}: "


def test_every_fixture_is_checked() -> None:
    on_disk = {p.name for p in INVALID.iterdir() if p.is_file()}
    assert on_disk == {*BROKEN, "two-errors.yaml"}


def test_binary_fixture_is_really_binary() -> None:
    assert b"\x00" in (INVALID / "binary.bin").read_bytes()


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(example: Path) -> None:
    run = canary("validate", example.relative_to(ROOT))
    assert run.code == 0, run.output
    assert run.stderr == ""
    assert f"{example.relative_to(ROOT)}: ok (Rollout/podinfo)" in run.stdout


def test_all_examples_at_once() -> None:
    assert len(EXAMPLES) >= 6
    run = canary("validate", *(p.relative_to(ROOT) for p in EXAMPLES))
    assert run.code == 0, run.output
    assert run.stdout.count(": ok (Rollout/podinfo)") == len(EXAMPLES)


def test_examples_cover_every_provider_and_strategy() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "podinfo-istio.yaml",
        "podinfo-linkerd.yaml",
        "podinfo-gateway-api.yaml",
        "podinfo-haproxy.yaml",
        "podinfo-ab-test.yaml",
        "podinfo-blue-green.yaml",
    } <= names


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_fixture_names_the_field(name: str) -> None:
    expected = BROKEN[name]
    run = canary("validate", f"tests/fixtures/invalid/{name}")
    assert "Traceback" not in run.output
    assert run.code == 1, run.output
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    prefix = _line(name, expected)
    assert lines[0].startswith(prefix), lines[0]
    message = lines[0][len(prefix) :]
    for hint in expected.hints:
        assert hint in message, f"{hint!r} not in {message!r}"


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_fixture_in_json(name: str) -> None:
    expected = BROKEN[name]
    run = canary("validate", "--output", "json", f"tests/fixtures/invalid/{name}")
    assert "Traceback" not in run.output
    assert run.code == 1
    report = json.loads(run.stdout)
    assert report["valid"] is False
    [entry] = report["files"]
    assert entry["file"] == f"tests/fixtures/invalid/{name}"
    assert entry["valid"] is False
    [problem] = entry["problems"]
    assert problem["path"] == expected.path
    for hint in expected.hints:
        assert hint in problem["message"]


def test_two_independent_errors_are_both_reported() -> None:
    run = canary("validate", "tests/fixtures/invalid/two-errors.yaml")
    assert run.code == 1
    assert "Traceback" not in run.output
    source = "tests/fixtures/invalid/two-errors.yaml"
    assert run.stderr.splitlines() == [
        f"{source}: spec.strategy.canary.weights[1]: "
        "Input should be less than or equal to 100 (got 101)",
        f"{source}: spec.analysis.interval: '5' is not a duration: use a number and a unit "
        "(ms, s, m, h), e.g. '30s', '5m', '1h30m'",
    ]


def test_two_errors_in_json() -> None:
    run = canary("validate", "-o", "json", "tests/fixtures/invalid/two-errors.yaml")
    assert run.code == 1
    [entry] = json.loads(run.stdout)["files"]
    assert [p["path"] for p in entry["problems"]] == [
        "spec.strategy.canary.weights[1]",
        "spec.analysis.interval",
    ]


def test_several_files_report_each_files_problems() -> None:
    files = [
        "examples/podinfo-istio.yaml",
        "tests/fixtures/invalid/two-errors.yaml",
        "tests/fixtures/invalid/weight-150.yaml",
        "tests/fixtures/invalid/empty.yaml",
    ]
    run = canary("validate", *files)
    assert run.code == 1
    assert "Traceback" not in run.output
    assert run.stdout.splitlines() == ["examples/podinfo-istio.yaml: ok (Rollout/podinfo)"]
    problems = run.stderr.splitlines()
    assert len(problems) == 4
    assert sum(p.startswith("tests/fixtures/invalid/two-errors.yaml: ") for p in problems) == 2
    assert problems[2].startswith("tests/fixtures/invalid/weight-150.yaml: spec.strategy")
    assert problems[3].startswith("tests/fixtures/invalid/empty.yaml: empty")


def test_several_files_in_json() -> None:
    files = [
        "examples/podinfo-linkerd.yaml",
        "tests/fixtures/invalid/typo-field.yaml",
        "tests/fixtures/invalid/binary.bin",
    ]
    run = canary("validate", "--output", "json", *files)
    assert run.code == 1
    report = json.loads(run.stdout)
    assert report["valid"] is False
    by_file = {f["file"]: f for f in report["files"]}
    assert list(by_file) == files
    ok = by_file["examples/podinfo-linkerd.yaml"]
    assert ok["valid"] is True
    assert ok["problems"] == []
    assert ok["resources"] == ["Rollout/podinfo"]
    assert [p["path"] for p in by_file["tests/fixtures/invalid/typo-field.yaml"]["problems"]] == [
        "spec.strategy.canary.stepWieght"
    ]
    assert [p["path"] for p in by_file["tests/fixtures/invalid/binary.bin"]["problems"]] == [""]


def test_valid_files_in_json() -> None:
    run = canary("validate", "-o", "json", *(p.relative_to(ROOT) for p in EXAMPLES))
    assert run.code == 0
    report = json.loads(run.stdout)
    assert report["valid"] is True
    assert all(f["valid"] and f["problems"] == [] for f in report["files"])


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    run = canary("validate", missing, tmp_path)
    assert run.code == 1
    assert "Traceback" not in run.output
    assert run.stderr.splitlines() == [
        f"{missing}: cannot read: No such file or directory",
        f"{tmp_path}: cannot read: Is a directory",
    ]


def test_a_problem_in_the_second_document_names_it(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "podinfo-istio.yaml").read_text()
    broken = tmp_path / "podinfo.yaml"
    broken.write_text(text.replace("weights: [5, 10, 20, 50]", "weights: [5, 10, 20, 5]"))
    run = canary("validate", broken)
    assert run.code == 1
    assert run.stderr.splitlines() == [
        f"{broken}[1]: spec.strategy.canary.weights: weights must rise: 5 follows 20 in "
        "[5, 10, 20, 5]; list each step's weight in increasing order"
    ]


def test_no_file_is_a_usage_error() -> None:
    run = canary("validate")
    assert run.code == 2
    assert "Traceback" not in run.output
    assert "Missing argument" in run.stderr


def test_yaml_in_the_rollout_reference_is_valid(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "rollout.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 3
    files = []
    for index, block in enumerate(blocks):
        path = tmp_path / f"block-{index}.yaml"
        path.write_text(block)
        files.append(path)
    run = canary("validate", *files)
    assert run.code == 0, run.output


ROLLOUT_NAMING_STRICT = """\
apiVersion: canary.dev/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  targetRef: {name: web}
  service: {port: 9898}
  provider: {name: istio}
  analysis: {policies: [{name: strict, kind: AnalysisPolicy}, {name: elsewhere}]}
"""
STRICT_POLICY = """\
apiVersion: canary.dev/v1alpha1
kind: AnalysisPolicy
metadata: {name: strict, namespace: shop}
spec:
  checks:
    - {name: errors, kind: error-rate, max: 1, requestsQuery: a, failuresQuery: b}
    - {name: errors, kind: error-rate, max: %s, requestsQuery: a, failuresQuery: b}
"""


def test_a_rollout_naming_a_refused_policy_among_the_files_is_refused_as_the_controller_does(
    tmp_path: Path,
) -> None:
    """The words of the controller's Valid condition (tests/controller/test_refused_objects.py);
    'elsewhere', in none of the files, is left to the cluster."""
    rollout, policy = tmp_path / "rollout.yaml", tmp_path / "policy.yaml"
    rollout.write_text(ROLLOUT_NAMING_STRICT)
    policy.write_text(STRICT_POLICY % 2)
    run = canary("validate", rollout, policy)
    assert run.code == 1
    assert (
        f"{rollout}: spec.analysis.policies[0].name: AnalysisPolicy 'strict' is invalid, so it "
        "is not used: spec: check names must be unique: errors repeated." in run.output
    )
    assert f"{policy}: spec: check names must be unique: errors repeated" in run.output
    assert "policies[1]" not in run.output
    alone = canary("validate", rollout)
    assert alone.code == 0, "without the policy's file: the cluster may hold a valid one"
    policy.write_text(
        STRICT_POLICY.replace(
            "name: errors, kind: error-rate, max: %s", "name: b, kind: error-rate, max: 2"
        )
    )
    assert canary("validate", rollout, policy).code == 0, "the policy fixed: both valid"
