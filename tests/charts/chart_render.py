"""A stand-in for `helm template`, for the tests only: renders charts/canary with the subset of
Go's text/template and of Helm's functions that its templates use.

`helm` cannot be installed on the machines canary is developed and tested on, so the chart's
tests render it with this module instead. It is not Helm: it implements

- actions `{{ ... }}` with the trim markers `{{-` and `-}}`, comments `{{/* ... */}}`;
- `define`, `if` / `else if` / `else`, `with` / `else`, `range` (lists and maps, maps in key
  order, with `$i, $v :=` or `$v :=`), variables (`$x := ...`, `$` the root), pipelines
  (`a | f b` is `f b a`), parenthesised pipelines, field chains (`.Values.a.b`, `$x.a`);
- the built-in objects `.Values`, `.Release` (Name, Namespace, Service, IsInstall, IsUpgrade,
  Revision), `.Chart` (Chart.yaml's fields, capitalised), `.Files` (`Get`, `Glob`);
- the functions `include`, `toYaml`, `nindent`, `indent`, `quote`, `default`, `empty`,
  `printf` (`%s`, `%v`, `%d`, `%q`), `trunc`, `trimSuffix`, `required`, `fail`, `eq`, `ne`,
  `not`, `and`, `or`, `len`.

and it is strict where Helm is strict: an unknown function, a field of a nil value, a `%d` of
a float (Helm reads every number of values.yaml as a float64) are errors, so a template that
renders here does not lean on anything this module is lenient about. Values are merged, read
and printed as Helm does it: numbers become floats, printed as Go prints them (`8080`,
`1e+06`), a missing key is nil and prints as nothing. A template outside the subset is
refused with a `TemplateError` naming the file and line.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

Json = dict[str, Any]


class TemplateError(Exception):
    """A template this renderer cannot parse or evaluate (file:line: what)."""


class TemplateFailError(Exception):
    """A template called `fail` or `required`: the message a user of Helm would see."""


# --- values as Helm holds them ---------------------------------------------------------------


def helm_numbers(value: Any) -> Any:
    """Every number as a float64, as Helm's YAML-to-JSON reading of values leaves it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: helm_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [helm_numbers(v) for v in value]
    return value


def merge_values(base: Any, override: Any) -> Any:
    """Helm's coalescing of `--values`/`--set` over values.yaml: maps merge, the rest
    replaces; a null in the override deletes the key."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = merge_values(base.get(key), value)
        return merged
    return copy.deepcopy(override)


def go_float(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64), what `{{ x }}` and `%v` print for a float64:
    the shortest digits, in exponent form when the exponent is below -4 or 6 and above
    (hence Helm's `1e+06` for a value of 1000000)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    parts = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, parts.digits))
    point = len(digits) + int(parts.exponent)  # digits before the decimal point
    exp = point - 1
    if exp < -4 or exp >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_print(value: Any) -> str:
    """fmt.Sprint of a template value (a nil prints as nothing, as Helm leaves it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def truthy(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings, lists and maps are false."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | bytes | list | dict | tuple):
        return bool(value)
    return True


def _to_plain(value: Any) -> Any:
    """Values for yaml.safe_dump: integral floats as ints (Go's YAML writes 8080, not 8080.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


def to_yaml(value: Any) -> str:
    """Helm's toYaml: the YAML of the value (keys sorted), without the final newline."""
    if value is None:
        return "null"
    text = yaml.safe_dump(_to_plain(value), default_flow_style=False, sort_keys=True, width=10**6)
    text = text.removesuffix("\n")
    return text.removesuffix("\n...")  # a bare scalar's document end marker


# --- the chart's objects -------------------------------------------------------------------


class Files:
    """`.Files`: the chart's files other than templates/, values.yaml and Chart.yaml."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def Get(self, path: str) -> str:  # noqa: N802 - Helm's name
        target = self.root / path
        return target.read_text(encoding="utf-8") if target.is_file() else ""

    def Glob(self, pattern: str) -> dict[str, bytes]:  # noqa: N802 - Helm's name
        found = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root).as_posix()
            chart_own = rel.startswith("templates/") or rel in ("values.yaml", "Chart.yaml")
            # `*` does not cross a `/`, as in Helm's glob
            same_depth = rel.count("/") == pattern.count("/")
            matches = same_depth and PurePosixPath(rel).match(pattern)
            if path.is_file() and matches and not chart_own:
                found[rel] = path.read_bytes()
        return found


# --- lexing and parsing --------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<decl>:=)
    | (?P<pipe>\|)
    | (?P<lp>\()
    | (?P<rp>\))
    | (?P<comma>,)
    | (?P<var>\$[A-Za-z0-9_]*)
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    | (?P<dot>\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


@dataclass
class Tok:
    kind: str
    text: str
    start: int = 0
    end: int = 0


def tokenize(source: str, where: str) -> list[Tok]:
    tokens, pos = [], 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        m = _TOKEN.match(source, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"{where}: cannot read {source[pos:]!r}")
        kind = m.lastgroup or ""
        tokens.append(Tok(kind, m.group(kind), m.start(kind), m.end()))
        pos = m.end()
    return tokens


@dataclass
class Text:
    text: str


@dataclass
class Action:
    """`{{ pipeline }}`, or a variable declaration `{{ $x := pipeline }}` (prints nothing)."""

    pipeline: list[list[Any]]  # commands, each a list of operands
    declare: list[str]
    where: str


@dataclass
class Branch:
    keyword: str  # if, with, range
    pipeline: list[list[Any]]
    declare: list[str]
    body: list[Any]
    otherwise: list[Any]
    where: str


@dataclass
class Template:
    name: str
    body: list[Any]


@dataclass
class Chart:
    """A chart read from its directory."""

    root: Path
    metadata: Json
    values: Json
    templates: dict[str, list[Any]] = field(default_factory=dict)
    defines: dict[str, Template] = field(default_factory=dict)


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


def _segments(source: str, name: str) -> Iterator[tuple[str, Any]]:
    """("text", str) and ("action", (body, where)) in order, trim markers applied."""
    pos, pending_trim = 0, False
    for m in _ACTION.finditer(source):
        text = source[pos : m.start()]
        if pending_trim:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            yield "text", text
        line = source.count("\n", 0, m.start()) + 1
        body = m.group(2)
        if body.startswith("/*"):
            if not body.rstrip().endswith("*/"):
                raise TemplateError(f"{name}:{line}: unclosed comment")
        else:
            yield "action", (body.strip(), f"{name}:{line}")
        pending_trim = bool(m.group(3))
        pos = m.end()
    text = source[pos:]
    if pending_trim:
        text = text.lstrip()
    if "{{" in text:
        raise TemplateError(f"{name}: an action left open")
    if text:
        yield "text", text


class _Parser:
    def __init__(self, source: str, name: str, defines: dict[str, Template]) -> None:
        self.items = list(_segments(source, name))
        self.index = 0
        self.name = name
        self.defines = defines

    def parse(self) -> list[Any]:
        body, end = self._block(top=True)
        if end is not None:
            raise TemplateError(f"{end[1]}: unexpected {end[0]!r}")
        return body

    def _block(self, top: bool = False) -> tuple[list[Any], tuple[str, str] | None]:
        """Nodes up to an `else...` or `end` (returned, with where it stands)."""
        nodes: list[Any] = []
        while self.index < len(self.items):
            kind, value = self.items[self.index]
            self.index += 1
            if kind == "text":
                nodes.append(Text(value))
                continue
            body, where = value
            word = body.split(None, 1)[0] if body else ""
            rest = body[len(word) :].strip()
            if word in ("end", "else"):
                return nodes, (body, where)
            if word in ("if", "with", "range"):
                nodes.append(self._branch(word, rest, where))
            elif word == "define":
                if not top:
                    raise TemplateError(f"{where}: define inside a block")
                name = _string_literal(rest, where)
                inner, end = self._block()
                if end is None or end[0] != "end":
                    raise TemplateError(f"{where}: define {name!r} without end")
                self.defines[name] = Template(name, inner)
            elif word in ("template", "block", "break", "continue"):
                raise TemplateError(f"{where}: {word!r} is outside this renderer's subset")
            else:
                declare, pipeline = _parse_pipeline(body, where)
                nodes.append(Action(pipeline, declare, where))
        return nodes, None

    def _branch(self, keyword: str, rest: str, where: str) -> Branch:
        declare, pipeline = _parse_pipeline(rest, where)
        if declare and keyword != "range":
            raise TemplateError(f"{where}: variables in {keyword} are outside the subset")
        body, end = self._block()
        if end is None:
            raise TemplateError(f"{where}: {keyword} without end")
        otherwise: list[Any] = []
        text, end_where = end
        if text.startswith("else"):
            chained = text[4:].strip()
            if chained.startswith("if ") and keyword == "if":
                otherwise = [self._branch("if", chained[3:], end_where)]
                return Branch(keyword, pipeline, declare, body, otherwise, where)
            if chained:
                raise TemplateError(f"{end_where}: 'else {chained}' is outside the subset")
            otherwise, end = self._block()
            if end is None or end[0] != "end":
                raise TemplateError(f"{where}: {keyword} without end")
        return Branch(keyword, pipeline, declare, body, otherwise, where)


def _string_literal(text: str, where: str) -> str:
    tokens = tokenize(text, where)
    if len(tokens) != 1 or tokens[0].kind not in ("str", "raw"):
        raise TemplateError(f"{where}: expected a string, got {text!r}")
    return _literal(tokens[0])  # type: ignore[no-any-return]


def _literal(tok: Tok) -> Any:
    if tok.kind == "str":
        return json.loads(tok.text)
    if tok.kind == "raw":
        return tok.text[1:-1]
    if tok.kind == "num":
        return float(tok.text) if "." in tok.text else int(tok.text)
    raise AssertionError(tok)


def _parse_pipeline(text: str, where: str) -> tuple[list[str], list[list[Any]]]:
    tokens = tokenize(text, where)
    declare: list[str] = []
    if any(t.kind == "decl" for t in tokens):
        head = []
        while tokens and tokens[0].kind != "decl":
            head.append(tokens.pop(0))
        tokens.pop(0)
        declare = [t.text for t in head if t.kind == "var"]
        if not declare or len(declare) > 2 or len(head) != 2 * len(declare) - 1:
            raise TemplateError(f"{where}: bad declaration {text!r}")
    pipeline, index = _commands(tokens, 0, where)
    if index != len(tokens):
        raise TemplateError(f"{where}: unexpected {tokens[index].text!r}")
    if not pipeline or not all(pipeline):
        raise TemplateError(f"{where}: empty pipeline in {text!r}")
    return declare, pipeline


def _touching(tokens: list[Tok], index: int) -> bool:
    """A field chain written right after the token before it (no space) belongs to it."""
    return (
        index < len(tokens)
        and tokens[index].kind == "field"
        and tokens[index].start == tokens[index - 1].end
    )


def _commands(tokens: list[Tok], index: int, where: str) -> tuple[list[list[Any]], int]:
    """Commands separated by `|`, up to a `)` or the end."""
    commands: list[list[Any]] = [[]]
    while index < len(tokens):
        tok = tokens[index]
        if tok.kind == "rp":
            break
        index += 1
        if tok.kind == "pipe":
            commands.append([])
        elif tok.kind == "lp":
            inner, index = _commands(tokens, index, where)
            if index >= len(tokens) or tokens[index].kind != "rp":
                raise TemplateError(f"{where}: unclosed parenthesis")
            index += 1
            chain: list[str] = []
            if _touching(tokens, index):  # `(...).a`
                chain = tokens[index].text[1:].split(".")
                index += 1
            commands[-1].append(("sub", inner, chain))
        elif tok.kind in ("str", "raw", "num"):
            commands[-1].append(("lit", _literal(tok)))
        elif tok.kind == "ident" and tok.text in ("true", "false", "nil"):
            commands[-1].append(("lit", {"true": True, "false": False, "nil": None}[tok.text]))
        elif tok.kind == "ident":
            commands[-1].append(("fn", tok.text))
        elif tok.kind == "dot":
            commands[-1].append(("field", None, []))
        elif tok.kind == "field":
            commands[-1].append(("field", None, tok.text[1:].split(".")))
        elif tok.kind == "var":
            chain = []
            if _touching(tokens, index):  # `$x.a.b`
                chain = tokens[index].text[1:].split(".")
                index += 1
            commands[-1].append(("field", tok.text, chain))
        else:
            raise TemplateError(f"{where}: unexpected {tok.text!r}")
    return commands, index


# --- evaluation ----------------------------------------------------------------------------


@dataclass
class _Scope:
    dot: Any
    variables: dict[str, Any]


class Renderer:
    """Renders one chart with a given set of values."""

    def __init__(self, chart: Chart, values: Json, release: Json, template: str = "") -> None:
        self.chart = chart
        self.root = {
            "Values": values,
            "Release": release,
            "Chart": {k[:1].upper() + k[1:]: v for k, v in chart.metadata.items()},
            "Files": Files(chart.root),
            "Template": {"Name": template, "BasePath": f"{chart.metadata['name']}/templates"},
        }
        self.depth = 0
        self.functions: dict[str, Callable[..., Any]] = {
            "include": self._include,
            "toYaml": to_yaml,
            "nindent": lambda n, s: "\n" + _indent(n, s),
            "indent": _indent,
            "quote": lambda *a: " ".join(_go_quote(x) for x in a if x is not None),
            "default": lambda d, *given: given[0] if given and truthy(given[0]) else d,
            "empty": lambda v: not truthy(v),
            "printf": _printf,
            "trunc": lambda n, s: _trunc(n, s),
            "trimSuffix": lambda suffix, s: go_print(s).removesuffix(suffix),
            "required": _required,
            "fail": _fail,
            "eq": _eq,
            "ne": lambda a, b: not _eq(a, b),
            "not": lambda v: not truthy(v),
            "len": len,
        }

    def render(self, nodes: list[Any]) -> str:
        return self._run(nodes, _Scope(self.root, {"$": self.root}))

    def _include(self, name: str, data: Any) -> str:
        template = self.chart.defines.get(name)
        if template is None:
            raise TemplateError(f'include: no template "{name}"')
        self.depth += 1
        if self.depth > 100:
            raise TemplateError(f"include {name!r}: recursion too deep")
        try:
            return self._run(template.body, _Scope(data, {"$": data}))
        finally:
            self.depth -= 1

    def _run(self, nodes: list[Any], scope: _Scope) -> str:
        out: list[str] = []
        variables = dict(scope.variables)  # a block's variables end with it
        here = _Scope(scope.dot, variables)
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                value = self._pipeline(node.pipeline, here, node.where)
                if node.declare:
                    variables[node.declare[0]] = value
                else:
                    out.append(go_print(value))
            else:
                out.append(self._branch(node, here))
        return "".join(out)

    def _branch(self, node: Branch, scope: _Scope) -> str:
        value = self._pipeline(node.pipeline, scope, node.where)
        if node.keyword == "if":
            chosen = node.body if truthy(value) else node.otherwise
            return self._run(chosen, scope)
        if node.keyword == "with":
            if truthy(value):
                return self._run(node.body, _Scope(value, scope.variables))
            return self._run(node.otherwise, scope)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif value is None:
            items = []
        else:
            raise TemplateError(f"{node.where}: range can't iterate over {go_print(value)}")
        if not items:
            return self._run(node.otherwise, scope)
        out = []
        for key, item in items:
            variables = dict(scope.variables)
            if len(node.declare) == 2:
                variables[node.declare[0]], variables[node.declare[1]] = key, item
            elif node.declare:
                variables[node.declare[0]] = item
            out.append(self._run(node.body, _Scope(item, variables)))
        return "".join(out)

    def _pipeline(self, commands: list[list[Any]], scope: _Scope, where: str) -> Any:
        value: Any = _NOTHING
        for command in commands:
            value = self._command(command, scope, where, value)
        return value

    def _command(self, command: list[Any], scope: _Scope, where: str, piped: Any) -> Any:
        head, *args = command
        extra = [] if piped is _NOTHING else [piped]
        if head[0] == "fn":
            name = head[1]
            if name in ("and", "or"):
                return self._and_or(name, args, scope, where, extra)
            function = self.functions.get(name)
            if function is None:
                raise TemplateError(f'{where}: function "{name}" not defined in this subset')
            values = [self._operand(a, scope, where) for a in args] + extra
            try:
                return function(*values)
            except (TemplateFailError, TemplateError):
                raise
            except Exception as exc:
                raise TemplateError(f"{where}: {name}: {exc}") from exc
        if not args and not extra:
            return self._operand(head, scope, where)
        # Only a method takes arguments: `.Files.Get $path`, `$.Files.Glob "..."`.
        if head[0] != "field" or not head[2]:
            raise TemplateError(f"{where}: can't give arguments to a non-function")
        owner = self._operand(("field", head[1], head[2][:-1]), scope, where)
        method = getattr(owner, head[2][-1], None) if isinstance(owner, Files) else None
        if method is None:
            raise TemplateError(f"{where}: .{'.'.join(head[2])} is not a method")
        return method(*[self._operand(a, scope, where) for a in args], *extra)

    def _and_or(
        self, name: str, args: list[Any], scope: _Scope, where: str, extra: list[Any]
    ) -> Any:
        value: Any = None
        for arg in args:
            value = self._operand(arg, scope, where)
            if truthy(value) != (name == "and"):
                return value
        for value in extra:
            if truthy(value) != (name == "and"):
                return value
        return value

    def _operand(self, operand: Any, scope: _Scope, where: str) -> Any:
        kind = operand[0]
        if kind == "lit":
            return operand[1]
        if kind == "fn":
            return self._command([operand], scope, where, _NOTHING)
        if kind == "sub":
            value = self._pipeline(operand[1], scope, where)
            return self._chain(value, operand[2], where, "(...)")
        _, variable, chain = operand
        if variable is None:
            return self._chain(scope.dot, chain, where, "")
        if variable not in scope.variables:
            raise TemplateError(f"{where}: undefined variable {variable}")
        return self._chain(scope.variables[variable], chain, where, variable)

    def _chain(self, value: Any, chain: list[str], where: str, label: str) -> Any:
        path = label
        for name in chain:
            if value is None:
                raise TemplateError(
                    f"{where}: nil pointer evaluating interface {{}}.{name} ({path})"
                )
            path += "." + name
            if isinstance(value, dict):
                value = value.get(name)
            elif hasattr(value, name):
                value = getattr(value, name)
            else:
                raise TemplateError(f"{where}: can't evaluate field {name} in {path}")
        return value


class _Nothing:
    pass


_NOTHING = _Nothing()


def _go_quote(value: Any) -> str:
    """%q of the value's text (Go escapes as JSON does for the text a chart holds)."""
    return json.dumps(go_print(value), ensure_ascii=False)


def _indent(n: Any, text: Any) -> str:
    pad = " " * int(n)
    return pad + go_print(text).replace("\n", "\n" + pad)


def _trunc(n: Any, text: Any) -> str:
    s, count = go_print(text), int(n)
    return s[:count] if count >= 0 else s[count:]


def _required(message: str, value: Any) -> Any:
    if value is None or value == "":
        raise TemplateFailError(message)
    return value


def _fail(message: str) -> Any:
    raise TemplateFailError(message)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "nil" if value is None else type(value).__name__


def _eq(a: Any, *others: Any) -> bool:
    """Go's eq: basic values of one kind (an int literal against a float64 value is an
    error, as in Helm)."""
    for b in others:
        if _kind(a) != _kind(b) and "nil" not in (_kind(a), _kind(b)):
            raise TemplateError(f"eq: incompatible types for comparison: {a!r}, {b!r}")
        if a == b:
            return True
    return False


_VERB = re.compile(r"%([-+# 0]*\d*(?:\.\d+)?)([svdq%])")


def _printf(fmt: str, *args: Any) -> str:
    values = list(args)

    def one(m: re.Match[str]) -> str:
        verb = m.group(2)
        if verb == "%":
            return "%"
        if not values:
            return f"%!{verb}(MISSING)"
        value = values.pop(0)
        if verb == "d":
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            kind = "float64" if isinstance(value, float) else type(value).__name__
            return f"%!d({kind}={go_print(value)})"
        if verb == "q":
            return _go_quote(value)
        return go_print(value)

    out = _VERB.sub(one, fmt)
    if values:
        out += "%!(EXTRA " + ", ".join(go_print(v) for v in values) + ")"
    return out


# --- the chart -----------------------------------------------------------------------------


def load_chart(root: Path) -> Chart:
    metadata = yaml.safe_load((root / "Chart.yaml").read_text(encoding="utf-8"))
    values = yaml.safe_load((root / "values.yaml").read_text(encoding="utf-8")) or {}
    chart = Chart(root, metadata, values)
    for path in sorted((root / "templates").glob("*")):
        if path.suffix not in (".yaml", ".yml", ".tpl", ".txt"):
            continue
        nodes = _Parser(path.read_text(encoding="utf-8"), path.name, chart.defines).parse()
        if not path.name.startswith("_"):
            chart.templates[path.name] = nodes
    return chart


@dataclass
class Rendered:
    """What `helm template` would print: each template's text, and the objects they hold."""

    texts: dict[str, str]
    notes: str

    def documents(self) -> list[tuple[str, Json]]:
        """(template, object) of every non-empty YAML document, in template order."""
        found = []
        for name, text in self.texts.items():
            for doc in yaml.safe_load_all(text):
                if doc is not None:
                    found.append((name, doc))
        return found

    def objects(self) -> list[Json]:
        return [doc for _, doc in self.documents()]

    def manifest(self) -> str:
        """One multi-document YAML stream, as `helm template` prints it."""
        parts = []
        for name, text in self.texts.items():
            for doc in re.split(r"(?m)^---\s*$", text):
                if yaml.safe_load(doc) is not None:
                    parts.append(f"---\n# Source: canary/templates/{name}\n{doc.strip()}\n")
        return "".join(parts)

    def find(self, kind: str, name: str | None = None) -> list[Json]:
        return [
            o
            for o in self.objects()
            if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
        ]

    def one(self, kind: str, name: str | None = None) -> Json:
        found = self.find(kind, name)
        if len(found) != 1:
            raise AssertionError(f"{len(found)} {kind} {name or ''} rendered, expected 1")
        return found[0]


def render(
    root: Path,
    overrides: Json | None = None,
    *,
    release: str = "canary",
    namespace: str = "canary-system",
) -> Rendered:
    """`helm template RELEASE ROOT -n NAMESPACE -f overrides`, with this module's subset."""
    chart = load_chart(root)
    values = helm_numbers(merge_values(chart.values, overrides or {}))
    info = {
        "Name": release,
        "Namespace": namespace,
        "Service": "Helm",
        "IsInstall": True,
        "IsUpgrade": False,
        "Revision": 1,
    }
    texts, notes = {}, ""
    for name, nodes in chart.templates.items():
        try:
            text = Renderer(chart, values, info, f"canary/templates/{name}").render(nodes)
        except TemplateError as exc:
            raise TemplateError(f"{name}: {exc}") from exc
        if name == "NOTES.txt":
            notes = text
        else:
            texts[name] = text
    return Rendered(texts, notes)
