"""Strict reading of YAML documents: every error names the file, the field and the fix.

The keys of each section of a document are declared once, as a `Section` of `Field`s (type,
choices, range, pattern, default, required-ness and a one-line description). `Node` wraps one
value of a parsed document together with its place (file + field path); ``node.mapping(SECTION)``
checks the keys against the declaration (unknown keys get a did-you-mean) and ``node.get(key)``
reads a field with the declared type and constraints. packager/config/schema.py turns the same
declarations into a JSON Schema, so the schema and the loaders cannot drift apart.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}
_UNSET: Any = object()

# lower-case names: bundle folders, target names, candidate ids
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
NAME_RULE = "must be lower-case letters, digits, '.', '_' or '-'"


# -- declarations ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One key of a section (or, nameless, the items of a list): what it holds and what it means.

    ``type`` is str, int, float, bool, dict (a free-form mapping), a `Section`, a `ListOf` or a
    `OneOf`. ``default`` is what the loader uses when the key is absent or null (None: no
    default). ``nullable``: null is a value of its own (a tolerance switched off), not "absent".
    ``message``/``hint``: the error for a value of the right type that breaks ``pattern``,
    ``maximum`` or the list's ``min_items`` (formatted with {key}, {value}); without them the
    error is generic.
    """

    name: str
    type: Any
    description: str = ""
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    nullable: bool = False
    message: str | None = None
    hint: str | None = None


def item(kind: Any, description: str = "", **constraints: Any) -> Field:
    """A nameless field: the items of a `ListOf` or one alternative of a `OneOf`."""
    return Field("", kind, description, **constraints)


@dataclass(frozen=True)
class ListOf:
    """A list whose entries are ``item`` (a type, or a nameless `Field` with constraints)."""

    item: Any
    min_items: int = 0


@dataclass(frozen=True)
class OneOf:
    """A value of one of several shapes, e.g. a name or a full mapping."""

    options: tuple[Any, ...]


@dataclass(frozen=True)
class Section:
    """A mapping with a fixed set of keys: the declaration loaders and the schema share."""

    title: str
    description: str
    fields: tuple[Field, ...]
    _index: dict[str, Field] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {f.name: f for f in self.fields})
        if len(self._index) != len(self.fields):
            raise ValueError(f"section {self.title!r} declares a key twice")

    def keys(self) -> list[str]:
        return [f.name for f in self.fields]

    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def __getitem__(self, key: str) -> Field:
        return self._index[key]

    def __contains__(self, key: object) -> bool:
        return key in self._index


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    options = list(options)
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not match and word:  # an abbreviation: 'CUDA' -> 'CUDAExecutionProvider'
        match = [o for o in options if o.lower().startswith(word.lower())][:1]
    return f" (did you mean {match[0]!r}?)" if match else ""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        if not isinstance(node, yaml.MappingNode):  # e.g. '!!set [a]': let the base class refuse it
            return super().construct_mapping(node, deep=deep)
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in the same mapping", key_node.start_mark)
                seen.add(key)
            except TypeError:  # a list or mapping as a key: the base class reports it as unhashable
                pass
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, error: type[ConfigError], what: str) -> Any:
    """Parse a YAML file safely, turning I/O and syntax problems into ``error``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} file not found", where=str(path),
                    hint="check the path (relative paths are taken from the current directory)") from None
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what} file: it is not UTF-8 text ({exc.reason} at byte {exc.start})",
                    where=str(path), hint=f"save the {what} as UTF-8 text") from None
    except OSError as exc:
        raise error(f"cannot read {what} file: {exc.strerror or exc}", where=str(path),
                    hint=f"give the path of a readable {what} YAML file") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        hint = ("edgepack reads plain YAML: each key once per mapping, no !!python or other custom tags"
                if isinstance(exc, yaml.constructor.ConstructorError) else
                "fix the YAML syntax (indentation, quotes, colons) at that line")
        raise error(f"malformed YAML: {problem}", where=place, hint=hint) from None
    except RecursionError:
        raise error("malformed YAML: collections nested too deeply to read", where=str(path),
                    hint="a manifest or target is a few levels deep; check for unbalanced brackets") from None
    except (ValueError, TypeError, AttributeError, OverflowError, LookupError) as exc:
        # PyYAML's constructors raise these for values that match a type's pattern but not its
        # range, e.g. the timestamp 2024-13-45, '!!int abc' or an empty '!!float 
        raise error(f"malformed YAML: a value cannot be read ({type(exc).__name__}: {exc})", where=str(path),
                    hint="quote values that are meant as plain text (e.g. '2024-13-45') and drop "
                         "explicit !!tags") from None


class Node:
    """One value of a YAML document and where it sits (file and dotted field path)."""

    def __init__(self, value: Any, file: str, path: str, error: type[ConfigError]) -> None:
        self.value = value
        self.file = file
        self.path = path
        self.error = error
        self.spec: Section | None = None  # the declaration, once mapping() has checked against it

    # -- places and errors -------------------------------------------------------------------
    def where(self, key: str | int | None = None) -> str:
        path = self.path
        if isinstance(key, int):
            path = f"{path}[{key}]"
        elif key is not None:
            path = f"{path}.{key}" if path else key
        return f"{self.file}: {path}" if path else self.file

    def fail(self, message: str, key: str | int | None = None, hint: str | None = None) -> ConfigError:
        return self.error(message, where=self.where(key), hint=hint)

    def child(self, key: str | int) -> Node:
        path = f"{self.path}[{key}]" if isinstance(key, int) else (f"{self.path}.{key}" if self.path else key)
        value = self.value[key]
        return Node(value, self.file, path, self.error)

    # -- shape checks --------------------------------------------------------------------------
    def mapping(self, allowed: Section | Sequence[str], required: Sequence[str] = ()) -> Node:
        """Require a mapping with only ``allowed`` keys and all ``required`` keys.

        Given a `Section`, its keys and required keys are used, and later reads of this node
        (get, items, strings) take each field's type and constraints from it.
        """
        if isinstance(allowed, Section):
            self.spec = allowed
            section = allowed
            allowed, required = section.keys(), section.required()
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, got {_describe(self.value)}",
                            hint="write 'key: value' lines here")
        for key in self.value:
            if not isinstance(key, str):
                raise self.fail(f"key {key!r} is not a string", hint="quote the key")
            if key not in allowed:
                raise self.fail(f"unknown key {key!r}{did_you_mean(key, allowed)}", key,
                                hint=f"allowed keys here: {', '.join(allowed)}")
        for key in required:
            if key not in self.value or self.value[key] is None:
                raise self.fail(f"missing required field {key!r}", key,
                                hint=f"add '{key}:' here")
        return self

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and self.value.get(key) is not None

    def declared(self, key: str) -> Field:
        """The declaration of ``key`` in the section this node was checked against."""
        if self.spec is None:
            raise TypeError(f"{self.where(key)}: call mapping(SECTION) before reading declared fields")
        return self.spec[key]

    def get(self, key: str, kind: type | None = None, default: Any = _UNSET, *,
            choices: Sequence[Any] | None = _UNSET, minimum: float | None = _UNSET) -> Any:
        """Read a scalar field (an int is accepted where a float is asked).

        Without ``kind``, the type, default, choices, range and pattern come from the field's
        declaration; the keyword arguments override them where the context decides (e.g. the
        choices of evaluation.output are the manifest's output names).
        """
        spec = self.declared(key) if kind is None else None
        if spec is not None:
            kind = spec.type
            if kind not in _TYPE_NAMES or kind in (list, dict):
                raise TypeError(f"{self.where(key)} is declared as {kind!r}, not a scalar")
        assert kind is not None  # given, or declared
        default = (spec.default if spec else None) if default is _UNSET else default
        choices = (spec.choices if spec else None) if choices is _UNSET else choices
        minimum = (spec.minimum if spec else None) if minimum is _UNSET else minimum
        if not self.has(key):
            return default
        value = self.value[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value, ok = float(value), True
            except OverflowError:
                raise self.fail(f"{value} is too large for a number", key) from None
        if kind is float and ok and value != value:
            raise self.fail("expected a number, got NaN", key, hint="give a finite number")
        if not ok:
            raise self.fail(f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {_describe(value)}", key)
        if choices is not None and value not in choices:
            shown = ", ".join(map(str, choices))
            raise self.fail(f"{value!r} is not one of: {shown}{did_you_mean(str(value), map(str, choices))}",
                            key, hint=f"use one of: {shown}")
        if minimum is not None and value < minimum:
            raise self.fail(f"must be >= {minimum}, got {value}", key, hint=spec.hint if spec is not None else None)
        if spec is not None and spec.maximum is not None and value > spec.maximum:
            raise self._broken(spec, key, value, f"must be <= {spec.maximum}, got {value}")
        if spec is not None and spec.pattern is not None and not re.search(_anchored(spec.pattern), value):
            raise self._broken(spec, key, value, f"{value!r} does not match {spec.pattern}")
        return value

    def _broken(self, spec: Field, key: str | int, value: Any, generic: str,
                hint: str | None = None) -> ConfigError:
        """The error for a value that breaks its declared pattern, maximum or min_items."""
        if spec.message is None:
            return self.fail(generic, key, hint=hint)
        return self.fail(spec.message.format(key=key, value=value), key, hint=hint or spec.hint)

    def items(self, key: str, *, required: bool = False, min_items: int | None = None,
              hint: str | None = None) -> list[Node]:
        """Read a list field as child nodes.

        ``min_items`` defaults to the declared one (a `ListOf` field); ``hint`` overrides the
        declared hint for a list that is too short.
        """
        spec = self.spec[key] if self.spec is not None and key in self.spec else None
        if min_items is None:
            min_items = spec.type.min_items if spec is not None and isinstance(spec.type, ListOf) else 0
        if not self.has(key):
            if required:
                raise self.fail(f"missing required field {key!r}", key, hint=f"add a '{key}:' list")
            return []
        value = self.value[key]
        if not isinstance(value, list):
            raise self.fail(f"expected a list, got {_describe(value)}", key,
                            hint="write one '- item' line per entry")
        if len(value) < min_items:
            generic = f"needs at least {min_items} entr{'y' if min_items == 1 else 'ies'}"
            if spec is None:
                raise self.fail(generic, key, hint=hint)
            raise self._broken(spec, key, value, generic, hint)
        node = self.child(key)
        return [node.child(i) for i in range(len(value))]

    def strings(self, key: str, default: Sequence[str] = (), *, hint: str | None = None) -> list[str]:
        """Read a list of strings (``hint``: as for items)."""
        out = []
        for entry in self.items(key, hint=hint):
            if not isinstance(entry.value, str):
                raise entry.fail(f"expected a string, got {_describe(entry.value)}")
            out.append(entry.value)
        return out if self.has(key) else list(default)

    def section(self, key: str) -> Node | None:
        return self.child(key) if self.has(key) else None


def _anchored(pattern: str) -> str:
    """A JSON Schema (ECMA-262) pattern for Python's re: a final '$' ends the text, as in ECMA
    (Python's '$' would also match before a final newline)."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__
