"""The Open Inference Protocol v2 (KServe / Triton) request and response bodies: JSON tensors, and
the binary tensor data extension (a JSON header of ``Inference-Header-Content-Length`` bytes, then
each binary tensor's raw little-endian bytes in order, sized by its ``binary_data_size``).

Only numpy: the server module holds the HTTP side. Every malformed request is a ``RequestError``
with the HTTP status and the reason the client gets.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..signature import TensorSpec

# OIP datatypes <-> numpy
DATATYPES: dict[str, str] = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
                             "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32",
                             "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64"}
DATATYPE_OF: dict[str, str] = {v: k for k, v in DATATYPES.items()}
_DATATYPE_OF_DTYPE: dict[np.dtype[Any], str] = {np.dtype(v): k for k, v in DATATYPES.items()}  # dtype.name is slow
_NATIVE_LITTLE = sys.byteorder == "little"
HEADER_LENGTH = "Inference-Header-Content-Length"
_LITTLE = {name: np.dtype(name).newbyteorder("<") for name in DATATYPES.values()}  # binary data is little-endian


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx) and the reason sent back."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class InferRequest:
    """A decoded infer request: the feeds, the outputs asked for (None: all), which to send binary."""

    id: str | None
    feeds: dict[str, np.ndarray]
    outputs: list[str] | None
    binary: set[str]
    binary_default: bool
    raw: dict[str, list[bytes]] = field(default_factory=dict)  # BYTES inputs: encoded images or texts, by name
    classification: dict[str, int] = field(default_factory=dict)  # output -> class_count (top-k as BYTES)


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    """A signature tensor as OIP metadata: symbolic axes are -1."""
    return {"name": spec.name, "datatype": DATATYPE_OF.get(spec.dtype, spec.dtype.upper()),
            "shape": [d if isinstance(d, int) else -1 for d in spec.shape]}


def bytes_elements(data: memoryview, where: str) -> list[bytes]:
    """The binary extension's BYTES tensor: each element a 4-byte little-endian length, then its bytes."""
    out, at = [], 0
    while at < len(data):
        if at + 4 > len(data):
            raise RequestError(400, f"{where}: a BYTES element's 4-byte length is cut off")
        n = int.from_bytes(data[at:at + 4], "little")
        if at + 4 + n > len(data):
            raise RequestError(400, f"{where}: a BYTES element of {n} bytes runs past its binary_data_size")
        out.append(bytes(data[at + 4:at + 4 + n]))
        at += 4 + n
    return out


def _raw_input(item: dict[str, Any], where: str, binary_data: memoryview, offset: int, kind: str
               ) -> tuple[list[bytes], int]:
    """A BYTES input: encoded images or texts (binary: length-prefixed elements; JSON: images as
    base64 strings, texts as strings)."""
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RequestError(400, f"{where}: 'shape' must be a list of non-negative integers")
    params = item.get("parameters") or {}
    if "binary_data_size" in params:
        nbytes = params["binary_data_size"]
        if not isinstance(nbytes, int) or nbytes < 0 or offset + nbytes > len(binary_data):
            raise RequestError(400, f"{where}: binary_data_size {nbytes!r} runs past the body")
        elements = bytes_elements(binary_data[offset:offset + nbytes], where)
        offset += nbytes
    else:
        data = item.get("data")
        if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
            raise RequestError(400, f"{where}: 'data' of a BYTES {kind} input must be a list of "
                                    + ("base64 strings" if kind == "image" else "strings"))
        if kind == "text":
            elements = [d.encode("utf-8") for d in data]
        else:
            try:
                elements = [base64.b64decode(d, validate=True) for d in data]
            except (binascii.Error, ValueError):
                raise RequestError(400, f"{where}: 'data' holds a string that is not base64") from None
    if len(elements) != math.prod(shape) or not elements:
        raise RequestError(400, f"{where}: {len(elements)} {kind}(s) for shape {shape}")
    return elements, offset


def decode(body: bytes, header_length: str | None, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
           raw_inputs: Mapping[str, str] | None = None) -> InferRequest:
    """The request body (with the binary extension when ``header_length`` is given). A name in
    ``raw_inputs`` ("image" or "text" by name) may come as BYTES: raw data the bundle pre-processes."""
    raw_inputs = raw_inputs or {}
    try:
        size = int(header_length) if header_length is not None else len(body)
    except ValueError:
        raise RequestError(400, f"{HEADER_LENGTH} must be a byte count, not {header_length!r}") from None
    if not 0 <= size <= len(body):
        raise RequestError(400, f"{HEADER_LENGTH} is {size}, but the body has {len(body)} bytes")
    try:
        doc = json.loads(body[:size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"the request is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise RequestError(400, "the request must be a JSON object with an 'inputs' list")
    specs = {s.name: s for s in inputs}
    binary_data = memoryview(body)[size:]
    offset = 0
    feeds: dict[str, np.ndarray] = {}
    raw: dict[str, list[bytes]] = {}
    for i, item in enumerate(doc["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequestError(400, f"{where} must be an object with a 'name'")
        name = item["name"]
        if name not in specs and name not in raw_inputs:
            known = sorted([*specs, *raw_inputs])
            raise RequestError(400, f"{where}: the model has no input {name!r} (it has {known})")
        if name in feeds or name in raw:
            raise RequestError(400, f"{where}: input {name!r} is given twice")
        if item.get("datatype") == "BYTES" or name not in specs:
            if name not in raw_inputs:
                raise RequestError(400, f"{where}: input {name!r} takes {specs[name].dtype} tensors; BYTES (encoded "
                                        "images, text) only go where the bundle pre-processes them")
            if item.get("datatype") != "BYTES":
                raise RequestError(400, f"{where}: {name!r} takes BYTES (raw {raw_inputs[name]}), not "
                                        f"{item.get('datatype')!r}")
            raw[name], offset = _raw_input(item, where, binary_data, offset, raw_inputs[name])
            continue
        dtype = DATATYPES.get(str(item.get("datatype")))
        if dtype is None:
            raise RequestError(400, f"{where}: datatype {item.get('datatype')!r} is not one of {sorted(DATATYPES)}")
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise RequestError(400, f"{where}: 'shape' must be a list of non-negative integers")
        count = math.prod(shape)
        params = item.get("parameters") or {}
        if "binary_data_size" in params:
            nbytes = params["binary_data_size"]
            if not isinstance(nbytes, int) or nbytes != count * np.dtype(dtype).itemsize:
                raise RequestError(400, f"{where}: binary_data_size {nbytes!r} is not {count} x "
                                        f"{np.dtype(dtype).itemsize} bytes for shape {shape} {item['datatype']}")
            if offset + nbytes > len(binary_data):
                raise RequestError(400, f"{where}: the body ends before its {nbytes} binary bytes")
            array = np.frombuffer(binary_data[offset:offset + nbytes], dtype=_LITTLE[dtype])
            offset += nbytes
        else:
            try:
                array = np.asarray(item.get("data"), dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise RequestError(400, f"{where}: 'data' does not hold {item['datatype']} values ({exc})") from None
            if array.size != count:
                raise RequestError(400, f"{where}: 'data' holds {array.size} values, shape {shape} needs {count}")
        feeds[name] = np.ascontiguousarray(array.reshape(shape).astype(dtype, copy=False))
    if offset != len(binary_data):
        raise RequestError(400, f"{len(binary_data) - offset} binary bytes after the last binary input")
    wanted, binary, default, classification = _outputs(doc, {s.name for s in outputs})
    return InferRequest(str(doc["id"]) if "id" in doc else None, feeds, wanted, binary, default, raw,
                        classification)


def _outputs(doc: dict[str, Any], names: set[str]) -> tuple[list[str] | None, set[str], bool, dict[str, int]]:
    params = doc.get("parameters") or {}
    default = bool(params.get("binary_data_output", False))
    items = doc.get("outputs")
    if items is None:
        return None, set(), default, {}
    if not isinstance(items, list):
        raise RequestError(400, "'outputs' must be a list")
    wanted, binary, classification = [], set(), {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("name") not in names:
            name = item.get("name") if isinstance(item, dict) else item
            raise RequestError(400, f"outputs[{i}]: the model has no output {name!r} (it has {sorted(names)})")
        wanted.append(item["name"])
        out_params = item.get("parameters") or {}
        if out_params.get("binary_data", default):
            binary.add(item["name"])
        count = out_params.get("classification")
        if count is not None:
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise RequestError(400, f"outputs[{i}]: classification must be a class count >= 1, got {count!r}")
            classification[item["name"]] = count
    return wanted, binary, False, classification


def classification_strings(ranked: Sequence[Sequence[Any]]) -> np.ndarray:
    """Triton's classification extension: per sample the top classes as "score:index[:label]" (BYTES)."""
    def text(r: Any) -> bytes:
        return (f"{r.score:f}:{r.index}" + (f":{r.label}" if r.label is not None else "")).encode()

    return np.array([[text(r) for r in row] for row in ranked], dtype=object)


def encode(model: str, version: str, request: InferRequest, results: Mapping[str, np.ndarray],
           order: Sequence[str]) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers (the binary extension's header length)."""
    names = request.outputs if request.outputs is not None else list(order)
    binary = request.binary | (set(names) if request.binary_default else set())
    items, blobs = [], []
    for name in names:
        value = np.ascontiguousarray(results[name])
        entry: dict[str, Any]
        if value.dtype == object:  # BYTES (classification results)
            entry = {"name": name, "datatype": "BYTES", "shape": list(value.shape)}
            if name in binary:
                raw = b"".join(len(v).to_bytes(4, "little") + v for v in value.ravel())
                entry["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                entry["data"] = [v.decode("utf-8", "replace") for v in value.ravel()]
            items.append(entry)
            continue
        datatype = _DATATYPE_OF_DTYPE.get(value.dtype) or value.dtype.name.upper()
        entry = {"name": name, "datatype": datatype, "shape": list(value.shape)}
        if name in binary:
            native = _NATIVE_LITTLE and value.dtype.byteorder in "=|<"
            raw = value.tobytes() if native else value.astype(value.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = value.ravel().tolist()
        items.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": items}
    if request.id is not None:
        doc["id"] = request.id
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, {}
    return header + b"".join(blobs), {HEADER_LENGTH: str(len(header))}
