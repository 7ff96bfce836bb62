"""The hostile tenant objects of issue #15, as files: each must be refused naming its field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROLLOUT = """apiVersion: canary.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
  namespace: test
  creationTimestamp: {created}
spec:
  targetRef:
    name: podinfo
  service:
    port: 9898
  provider:
    name: haproxy
    haproxy:
      primaryServer: {server}
  analysis:
    interval: {interval}
    failureLimit: {limit}
"""

ALIAS_BOMB = """apiVersion: canary.dev/v1alpha1
kind: Rollout
metadata:
  name: podinfo
  labels:
    a: &a ["x","x","x","x","x","x","x","x","x"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
spec: {}
"""


def rollout(**overrides: str) -> str:
    fields = {
        "name": "podinfo",
        "created": "2020-01-01T00:00:00Z",
        "server": "primary",
        "interval": "1m",
        "limit": "3",
    }
    fields.update(overrides)
    return ROLLOUT.format(**fields)


def variable_bomb(levels: int = 28, copies: int = 2) -> str:
    """A policy whose variable v0 doubles ``levels`` times: 2**levels copies of 'x'."""
    lines = [
        "apiVersion: canary.dev/v1alpha1",
        "kind: AnalysisPolicy",
        "metadata: {name: bomb, namespace: test}",
        "spec:",
        "  variables:",
    ]
    for level in range(levels):
        lines.append(f'    v{level}: "{"{{ v" + str(level + 1) + " }}" * copies}"')
    lines.append(f'    v{levels}: "x"')
    lines += ["  checks:", "  - name: c", "    kind: custom", '    query: "{{ v0 }}"']
    return "\n".join(lines) + "\n"


def wide_bomb() -> str:
    """Shallow but wide: 4 levels of 4,000-character values that each repeat the next."""
    placeholder = "{{ w1 }}"
    lines = [
        "apiVersion: canary.dev/v1alpha1",
        "kind: ClusterAnalysisPolicy",
        "metadata: {name: wide}",
        "spec:",
        "  variables:",
        f'    w0: "{placeholder * 500}"',
        f'    w1: "{"y" * 4000}"',
        "  checks:",
        "  - name: c",
        "    kind: custom",
        '    query: "{{ w0 }}"',
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Hostile:
    file: str
    text: str
    field: str
    hint: str


HOSTILE = (
    Hostile("variable-bomb.yaml", variable_bomb(), "spec.checks[0].query", "more than 8 deep"),
    Hostile("wide-bomb.yaml", wide_bomb(), "spec.checks[0].query", "past 16384 characters"),
    Hostile("bad-date.yaml", rollout(created="2001-13-45"), "metadata.creationTimestamp", "month"),
    Hostile("huge-int.yaml", rollout(limit="9" * 5000), "spec.analysis.failureLimit", "integer"),
    Hostile(
        "long-duration.yaml", rollout(interval="99999999999h"), "spec.analysis.interval", "366"
    ),
    Hostile("long-name.yaml", rollout(name="a" * 250), "metadata.name", "at most 63"),
    Hostile(
        "server-newline.yaml",
        rollout(server='"primary\\nserver evil 10.0.0.1:80"'),
        "spec.provider.haproxy.primaryServer",
        "pattern",
    ),
    Hostile("alias-bomb.yaml", ALIAS_BOMB, "", "YAML aliases (*a) are not accepted"),
    Hostile(
        "typo.yaml",
        rollout().replace("failureLimit", "failurLimit"),
        "spec.analysis.failurLimit",
        "did you mean 'failureLimit'?",
    ),
)


def write_all(folder: Path) -> list[Path]:
    paths = []
    for hostile in HOSTILE:
        path = folder / hostile.file
        path.write_text(hostile.text)
        paths.append(path)
    return paths
