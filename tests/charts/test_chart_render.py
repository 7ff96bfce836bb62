"""The test-only stand-in for `helm template` (chart_render.py): what it renders is what Go's
text/template and Helm render for the same text, and what it does not know it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_render import (
    TemplateError,
    TemplateFailError,
    go_float,
    helm_numbers,
    merge_values,
    render,
    to_yaml,
)

Json = dict[str, Any]


def chart(tmp_path: Path, template: str, values: str = "", helpers: str = "") -> Path:
    root = tmp_path / "chart"
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "Chart.yaml").write_text(
        "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: '4.5'\n"
    )
    (root / "values.yaml").write_text(values)
    (root / "templates" / "t.yaml").write_text(template)
    if helpers:
        (root / "templates" / "_helpers.tpl").write_text(helpers)
    return root


def text(tmp_path: Path, template: str, values: str = "") -> str:
    return render(chart(tmp_path, template, values)).texts["t.yaml"]


# Each: a template, values.yaml, and what Helm 3 prints for them.
CASES = [
    pytest.param("a: {{ .Values.x }}", "x: 1", "a: 1", id="field"),
    pytest.param("a: {{ .Values.missing }}", "", "a: ", id="missing-key-prints-nothing"),
    pytest.param("{{ .Values.n }} {{ .Values.f }}", "n: 1000000\nf: 0.5", "1e+06 0.5", id="floats"),
    pytest.param("{{ .Values.n }}", "n: 8080", "8080", id="port"),
    pytest.param("{{ .Values.b }}", "b: false", "false", id="bool"),
    pytest.param("a\n  {{- .Values.x }}\nb", "x: 1", "a1\nb", id="left-trim"),
    pytest.param("a  {{ .Values.x -}}\n\n  b", "x: 1", "a  1b", id="right-trim"),
    pytest.param("a\n{{- /* note */ -}}\nb", "", "ab", id="comment"),
    pytest.param(
        "{{ if .Values.x }}yes{{ else }}no{{ end }}", "x: []", "no", id="empty-list-false"
    ),
    pytest.param("{{ if .Values.x }}yes{{ end }}", "x: {a: 1}", "yes", id="map-true"),
    pytest.param(
        "{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}", "b: 1", "B", id="else-if"
    ),
    pytest.param(
        "{{ with .Values.m }}{{ .k }}{{ else }}none{{ end }}", "m: {k: v}", "v", id="with"
    ),
    pytest.param(
        "{{ with .Values.m }}{{ .k }}{{ else }}none{{ end }}", "m: {}", "none", id="with-else"
    ),
    pytest.param(
        "{{ range .Values.l }}[{{ . }}]{{ end }}", "l: [b, a]", "[b][a]", id="range-list-in-order"
    ),
    pytest.param(
        "{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}",
        "m: {b: 2, a: 1}",
        "a=1;b=2;",
        id="range-map-sorted",
    ),
    pytest.param(
        "{{ range $i, $v := .Values.l }}{{ if $i }},{{ end }}{{ $v }}{{ end }}",
        "l: [x, y, z]",
        "x,y,z",
        id="range-index",
    ),
    pytest.param(
        "{{ range .Values.l }}x{{ else }}empty{{ end }}", "l: []", "empty", id="range-else"
    ),
    pytest.param(
        "{{ range .Values.l }}{{ $.Values.p }}{{ . }} {{ end }}",
        "p: '-'\nl: [1, 2]",
        "-1 -2 ",
        id="root",
    ),
    pytest.param("{{ $x := .Values.a }}{{ $x.b }}", "a: {b: c}", "c", id="variable-field"),
    pytest.param("{{ .Values.s | quote }}", "s: 'say \"hi\"'", '"say \\"hi\\""', id="quote"),
    pytest.param("{{ .Values.n | quote }}", "n: 8080", '"8080"', id="quote-number"),
    pytest.param("{{ quote .Values.missing }}", "", "", id="quote-nil"),
    pytest.param('{{ default "d" .Values.s }}', "s: ''", "d", id="default-empty"),
    pytest.param('{{ .Values.s | default "d" }}', "s: given", "given", id="default-piped"),
    pytest.param('{{ printf "%s-%v" "a" .Values.n }}', "n: 3", "a-3", id="printf"),
    pytest.param('{{ printf "%d" .Values.n }}', "n: 3", "%!d(float64=3)", id="printf-d-of-a-float"),
    pytest.param('{{ "abcdef-" | trunc 7 | trimSuffix "-" }}', "", "abcdef", id="trunc-trim"),
    pytest.param('{{ if eq .Values.s "x" }}same{{ end }}', "s: x", "same", id="eq"),
    pytest.param(
        "{{ if and .Values.a (not .Values.b) }}yes{{ end }}", "a: 1\nb: false", "yes", id="and-not"
    ),
    pytest.param("{{ or .Values.a .Values.b }}", "a: ''\nb: bee", "bee", id="or-value"),
    pytest.param("{{ len .Values.l }}", "l: [1, 2, 3]", "3", id="len"),
    pytest.param(
        "m:{{ toYaml .Values.m | nindent 2 }}",
        "m: {b: [1, 2], a: x}",
        "m:\n  a: x\n  b:\n  - 1\n  - 2",
        id="toYaml-nindent",
    ),
    pytest.param("{{ .Values.s | indent 2 }}", 's: "a\\nb"', "  a\n  b", id="indent"),
    pytest.param('{{ include "greet" .Values.who }}', "who: {name: you}", "hi you", id="include"),
    pytest.param(
        "{{ .Chart.Name }} {{ .Chart.Version }} {{ .Chart.AppVersion }} {{ .Release.Name }} "
        "{{ .Release.Namespace }} {{ .Release.Service }}",
        "",
        "demo 1.2.3 4.5 canary canary-system Helm",
        id="built-in-objects",
    ),
    pytest.param(
        '{{ range $p, $_ := .Files.Glob "files/*.txt" }}{{ $p }}={{ $.Files.Get $p }};{{ end }}',
        "",
        "files/a.txt=A;files/b.txt=B;",
        id="files",
    ),
]


@pytest.mark.parametrize(("template", "values", "expected"), CASES)
def test_renders_as_helm_does(tmp_path: Path, template: str, values: str, expected: str) -> None:
    root = chart(
        tmp_path, template, values, helpers='{{- define "greet" -}}hi {{ .name }}{{- end -}}'
    )
    (root / "files").mkdir()
    (root / "files" / "b.txt").write_text("B")
    (root / "files" / "a.txt").write_text("A")
    (root / "files" / "c.yaml").write_text("C")
    assert render(root).texts["t.yaml"] == expected


REFUSED = [
    pytest.param("{{ .Values.a.b }}", "", "nil pointer evaluating interface {}.b", id="nil-field"),
    pytest.param("{{ lower .Values.a }}", "a: X", 'function "lower" not defined', id="unknown-fn"),
    pytest.param('{{ template "x" . }}', "", "outside this renderer's subset", id="template"),
    pytest.param("{{ if .Values.a }}open", "", "if without end", id="no-end"),
    pytest.param("{{ $nope }}", "", "undefined variable $nope", id="undefined-variable"),
    pytest.param("{{ eq .Values.n 1 }}", "n: 1", "incompatible types", id="int-against-float"),
    pytest.param('{{ include "none" . }}', "", 'no template "none"', id="no-such-define"),
    pytest.param('{{ .Values.a "arg" }}', "a: x", "is not a method", id="args-to-a-value"),
]


@pytest.mark.parametrize(("template", "values", "message"), REFUSED)
def test_refuses_what_it_does_not_know(
    tmp_path: Path, template: str, values: str, message: str
) -> None:
    with pytest.raises(TemplateError, match=message.replace("$", r"\$").replace("{", r"\{")):
        text(tmp_path, template, values)


def test_fail_and_required_stop_with_the_message(tmp_path: Path) -> None:
    with pytest.raises(TemplateFailError, match=r"^need x$"):
        text(tmp_path, '{{ required "need x" .Values.x }}')
    with pytest.raises(TemplateFailError, match=r"^stop here$"):
        text(tmp_path, '{{ if true }}{{ fail "stop here" }}{{ end }}')


def test_values_are_merged_and_numbers_are_floats_as_in_helm() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x", "gone": 1}
    merged = merge_values(base, {"a": {"c": [3]}, "gone": None})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": "x"}
    assert helm_numbers({"n": 2, "l": [1, True], "s": "3"}) == {
        "n": 2.0,
        "l": [1.0, True],
        "s": "3",
    }


@pytest.mark.parametrize(
    ("number", "printed"),
    [
        (8080.0, "8080"),
        (100000.0, "100000"),
        (1000000.0, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.5, "0.5"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.0, "-2"),
        (0.0, "0"),
    ],
)
def test_floats_print_as_go_prints_them(number: float, printed: str) -> None:
    assert go_float(number) == printed


def test_to_yaml_writes_integral_floats_as_integers() -> None:
    assert to_yaml({"b": 2.0, "a": "x"}) == "a: x\nb: 2"
    assert to_yaml({}) == "{}"
    assert to_yaml("plain") == "plain"
