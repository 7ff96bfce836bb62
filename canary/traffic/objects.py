"""What every mesh renderer shares: names, metadata, duration formats, regular expressions.

The renderers are pure: a Rollout and a Route in, plain Kubernetes objects (dicts, as the
kubernetes client and `kubectl apply` take them) out. Nothing here talks to the API server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from canary.model.rollout import API_VERSION, Rollout
from canary.model.strategy import CookieMatch
from canary.traffic.router import RouterError

Json = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
ROLLOUT_LABEL = "canary.dev/rollout"
DEFAULT_NAMESPACE = "default"


class RenderError(RouterError):
    """The Rollout or Route asks for something the mesh's objects cannot express."""


@dataclass(frozen=True)
class Names:
    """Flagger's layout: the team's Deployment ``app`` is the canary; canary keeps a primary."""

    service: str
    primary: str
    canary: str
    namespace: str
    port: int

    @classmethod
    def of(cls, rollout: Rollout) -> Names:
        target = rollout.spec.target_ref.name
        return cls(
            service=target,
            primary=f"{target}-primary",
            canary=f"{target}-canary",
            namespace=rollout.metadata.namespace or DEFAULT_NAMESPACE,
            port=rollout.spec.service.port,
        )


def metadata(rollout: Rollout, name: str, annotations: dict[str, str] | None = None) -> Json:
    """Name, namespace, the labels that say canary manages the object, and its owner."""
    meta: Json = {
        "name": name,
        "namespace": Names.of(rollout).namespace,
        "labels": {MANAGED_BY: "canary", ROLLOUT_LABEL: rollout.metadata.name},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    if rollout.metadata.uid:
        # Known once the Rollout is read from the cluster: deleting it deletes the routes.
        meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "Rollout",
                "name": rollout.metadata.name,
                "uid": rollout.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def find_object(objects: list[Json], api_group: str, kind: str, name: str) -> Json:
    """The object of ``kind`` (in ``api_group``, any version) named ``name``, or RouterError."""
    for obj in objects:
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        if (
            obj.get("kind") == kind
            and group == api_group
            and obj.get("metadata", {}).get("name") == name
        ):
            return obj
    raise RouterError(
        f"no {kind} '{name}' ({api_group}) among the live objects: apply the desired objects"
    )


def split_weight(primary: float, canary: float) -> int:
    """The canary's share in percent of two backend weights."""
    total = primary + canary
    if total <= 0:
        raise RouterError("both backends have weight 0: the route sends traffic nowhere")
    return round(100 * canary / total)


# --- durations ----------------------------------------------------------------------------


def _millis(seconds: float, what: str) -> int:
    ms = round(seconds * 1000)
    if seconds > 0 and ms == 0:
        raise RenderError(f"{what} {seconds}s is below one millisecond, the smallest unit here")
    return ms


def istio_duration(seconds: float, what: str) -> str:
    """Istio's (protobuf) duration: seconds with up to nine decimals, e.g. '10s', '0.25s'."""
    nanos = round(seconds * 1_000_000_000)
    if nanos < 1_000_000:
        raise RenderError(f"{what} must be at least 1ms for Istio (got {seconds}s)")
    whole, frac = divmod(nanos, 1_000_000_000)
    return f"{whole}.{frac:09d}".rstrip("0") + "s" if frac else f"{whole}s"


def gateway_duration(seconds: float, what: str) -> str:
    """Gateway API's duration (GEP-2257): up to four whole parts, e.g. '1m30s', '1500ms'."""
    ms = _millis(seconds, what)
    if ms == 0:
        return "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    if hours > 99_999:
        raise RenderError(f"{what} {seconds}s is longer than Gateway API durations allow")
    parts = ((hours, "h"), (minutes, "m"), (secs, "s"), (millis, "ms"))
    return "".join(f"{value}{unit}" for value, unit in parts if value)


def single_unit_duration(seconds: float, what: str) -> str:
    """One whole number and one unit ('90s', '1500ms'): what Linkerd's annotations parse."""
    ms = _millis(seconds, what)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# --- percentages ----------------------------------------------------------------------------


def fraction_of(percent: float) -> tuple[int, int]:
    """``percent`` as numerator/denominator of a fraction of requests (e.g. 12.5 -> 1/8)."""
    share = Fraction(percent).limit_denominator(1_000_000) / 100
    return share.numerator, share.denominator


def percent_of(numerator: int, denominator: int) -> float:
    return float(Fraction(numerator, denominator) * 100)


# --- regular expressions (RE2, Rust regex and Python agree on these) -------------------------

_META = set("\\.+*?()|[]{}^$")


def literal(text: str) -> str:
    """``text`` as a regular expression that matches exactly it."""
    return "".join(f"\\{c}" if c in _META else c for c in text)


def unliteral(pattern: str) -> str | None:
    """The text ``pattern`` (made by `literal`) matches, or None when it is no plain literal."""
    out: list[str] = []
    escaped = False
    for c in pattern:
        if escaped:
            if c not in _META:
                return None
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in _META:
            return None
        else:
            out.append(c)
    return None if escaped else "".join(out)


def prefix_regex(prefix: str) -> str:
    return f"^{literal(prefix)}.*$"


def prefix_of(pattern: str) -> str | None:
    """The prefix a `prefix_regex` pattern stands for, or None."""
    if pattern.startswith("^") and pattern.endswith(".*$"):
        return unliteral(pattern[1:-3])
    return None


_COOKIE_HEAD = r"^(.*;\s*)?"
_COOKIE_TAIL = r"(\s*;.*)?$"
_COOKIE = re.compile(re.escape(_COOKIE_HEAD) + r"(?P<body>.*)" + re.escape(_COOKIE_TAIL))


def cookie_regex(cookie: CookieMatch) -> str:
    """A regular expression over the whole ``cookie`` header: the cookie is present, anywhere."""
    return f"{_COOKIE_HEAD}{literal(cookie.name)}={literal(cookie.value)}{_COOKIE_TAIL}"


def cookie_of(pattern: str) -> CookieMatch | None:
    """The cookie a `cookie_regex` pattern matches, or None when it is not one."""
    found = _COOKIE.fullmatch(pattern)
    if found is None:
        return None
    name, sep, value = found.group("body").partition("=")
    name_text, value_text = unliteral(name), unliteral(value)
    if not sep or not name_text or not value_text:
        return None
    return CookieMatch(name=name_text, value=value_text)
