"""The fields a model accepts at a path: for "did you mean" and a field's help in messages.

A pip user has no docs folder, so a problem names the field and carries its own description
(the same text `canary crds` writes into the CRD schema).
"""

from __future__ import annotations

import difflib
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: itself, or inside Optional, list[...], dict[..., ...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin is None:
        return []
    found: list[type[BaseModel]] = []
    args = get_args(annotation)
    if origin in (Union, types.UnionType) or origin in (list, tuple, set, frozenset):
        for arg in args:
            found += _models_in(arg)
    elif origin is dict and len(args) == 2:
        found += _models_in(args[1])
    else:  # Annotated and the like
        found += _models_in(args[0]) if args else []
    return found


def _by_wire_name(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that holds the last part of ``loc`` (None when the path leaves the models)."""
    current = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = _by_wire_name(current).get(part)
        if info is None:
            continue  # a dict key: the value's model stays the one found last
        inner = _models_in(info.annotation)
        if not inner:
            return None
        current = inner[0]
    return current


def suggest_field(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The known field closest to the unknown last part of ``loc``, if one is close."""
    if not loc or not isinstance(loc[-1], str):
        return None
    holder = _model_at(model, loc)
    if holder is None:
        return None
    known = list(_by_wire_name(holder))
    lowered = {k.lower(): k for k in known}
    typed = loc[-1]
    if typed.lower() in lowered:
        return lowered[typed.lower()]
    close = difflib.get_close_matches(typed, known, n=1, cutoff=0.6)
    return close[0] if close else None


def field_help(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The description of the field at ``loc``, if the model gives one."""
    if not loc or not isinstance(loc[-1], str):
        return None
    holder = _model_at(model, loc)
    if holder is None:
        return None
    info = _by_wire_name(holder).get(loc[-1])
    if info is None:
        return None
    if info.description:
        return info.description.rstrip(".")
    inner = _models_in(info.annotation)
    doc = (inner[0].__doc__ or "").strip() if inner else ""
    return doc.splitlines()[0].rstrip(".") if doc else None
