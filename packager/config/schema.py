"""JSON Schemas (draft 2020-12) of manifests and targets, made from the loaders' own declarations.

The loaders (packager/config/manifest.py, packager/config/targets.py) check keys, required keys and types
against `Section`/`Field` declarations (packager/config/fields.py); this module turns those very
declarations into a schema, so an editor's YAML plugin can complete keys, show descriptions and
flag mistakes while typing, and the schema cannot drift from what ``edgepack build`` accepts.

Rules that involve several fields (a torch source needs ``entry``, int8 needs ``quantization``,
per-backend requirements must cover the candidates...) are the loaders' alone: a document the
schema accepts can still be refused by the loader, with a message saying why.
"""
from __future__ import annotations

from typing import Any

from .fields import Field, ListOf, OneOf, Section
from .manifest import MANIFEST
from .targets import TARGET

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_KINDS = ("manifest", "target")
_ROOTS = {"manifest": MANIFEST, "target": TARGET}
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object",
               list: "array"}


def schema_document(kind: str) -> dict[str, Any]:
    """The JSON Schema of a manifest (``kind="manifest"``) or a target (``kind="target"``)."""
    if kind not in _ROOTS:
        raise ValueError(f"unknown schema kind {kind!r}; use one of: {', '.join(SCHEMA_KINDS)}")
    defs: dict[str, Any] = {}
    body = _object(_ROOTS[kind], defs)
    doc: dict[str, Any] = {"$schema": DRAFT, "title": f"edgepack {kind}"}
    doc.update({k: v for k, v in body.items() if k != "title"})
    if defs:
        doc["$defs"] = dict(sorted(defs.items()))
    return doc


def _object(section: Section, defs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"title": section.title, "description": section.description, "type": "object",
                           "properties": {f.name: _field(f, defs) for f in section.fields}}
    if section.required():
        out["required"] = section.required()
    out["additionalProperties"] = False
    return out


def _ref(section: Section, defs: dict[str, Any]) -> dict[str, Any]:
    """A section used as a field's type goes into $defs once, and is referred to by name."""
    if section.title not in defs:
        defs[section.title] = {}  # reserve the name first: sections may refer to each other
        defs[section.title] = _object(section, defs)
    return {"$ref": f"#/$defs/{section.title}"}


def _type(kind: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The schema of a value of ``kind`` (a Python type, Section, ListOf, OneOf or nameless Field)."""
    if isinstance(kind, Field):
        return _field(kind, defs)
    if isinstance(kind, Section):
        return _ref(kind, defs)
    if isinstance(kind, ListOf):
        out: dict[str, Any] = {"type": "array", "items": _type(kind.item, defs)}
        if kind.min_items:
            out["minItems"] = kind.min_items
        return out
    if isinstance(kind, OneOf):
        return {"anyOf": [_type(option, defs) for option in kind.options]}
    return {"type": _JSON_TYPES[kind]}


def _field(f: Field, defs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": f.description} if f.description else {}
    out.update(_type(f.type, defs))
    if f.nullable:
        out["type"] = [out["type"], "null"]
    if f.choices is not None:
        out["enum"] = list(f.choices)
    if f.minimum is not None:
        out["minimum"] = f.minimum
    if f.maximum is not None:
        out["maximum"] = f.maximum
    if f.pattern is not None:
        out["pattern"] = f.pattern
    if f.default is not None and not f.required:
        out["default"] = f.default
    return out
