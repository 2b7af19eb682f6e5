"""The Open Inference Protocol v2 over gRPC (``serve --grpc-port``), beside the REST endpoints,
for the same ``Serving``: health, server and model metadata, and infer with tensors in
``raw_input_contents`` or typed ``contents``, encoded images and text as BYTES, Triton's
classification parameter, answers in ``raw_output_contents`` (what tritonclient and the KServe
SDK read). grpcio and protobuf are the ``serve-grpc`` extra, imported only here.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import __version__
from ..errors import FeedError
from .protocol import DATATYPE_OF, DATATYPES, RequestError, bytes_elements
from .serving import Serving

_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
             "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents"}
GRPC_HINT = "install the serve-grpc extra on this device: pip install grpcio protobuf"


def _tensor(item: Any, raw: bytes | None, where: str) -> np.ndarray:
    """One typed input tensor, from its raw bytes (little-endian) or its typed contents."""
    dtype = DATATYPES.get(item.datatype)
    if dtype is None:
        raise RequestError(400, f"{where}: datatype {item.datatype!r} is not one of {sorted(DATATYPES)}")
    shape = list(item.shape)
    if any(d < 0 for d in shape):
        raise RequestError(400, f"{where}: 'shape' must hold non-negative sizes, got {shape}")
    count = math.prod(shape)
    if raw is not None:
        if len(raw) != count * np.dtype(dtype).itemsize:
            raise RequestError(400, f"{where}: {len(raw)} raw bytes are not {count} x {np.dtype(dtype).itemsize} "
                                    f"for shape {shape} {item.datatype}")
        array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    else:
        field = _CONTENTS.get(item.datatype)
        if field is None:
            raise RequestError(400, f"{where}: {item.datatype} travels only in raw_input_contents")
        values = getattr(item.contents, field)
        if len(values) != count:
            raise RequestError(400, f"{where}: contents hold {len(values)} values, shape {shape} needs {count}")
        array = np.asarray(values, dtype=dtype)
    return np.ascontiguousarray(array.reshape(shape).astype(dtype, copy=False))


def decode_request(request: Any, inputs: list[Any], raw_inputs: dict[str, str]
                   ) -> tuple[dict[str, np.ndarray], dict[str, list[bytes]]]:
    """The feeds and raw (BYTES) data of a ModelInferRequest."""
    specs = {s.name for s in inputs}
    raws = list(request.raw_input_contents)
    if raws and len(raws) != len(request.inputs):
        raise RequestError(400, f"raw_input_contents holds {len(raws)} entries for {len(request.inputs)} inputs "
                                "(give every input raw, or none)")
    feeds: dict[str, np.ndarray] = {}
    raw_data: dict[str, list[bytes]] = {}
    for i, item in enumerate(request.inputs):
        where = f"inputs[{i}]"
        name = item.name
        if name not in specs and name not in raw_inputs:
            known = sorted([*specs, *raw_inputs])
            raise RequestError(400, f"{where}: the model has no input {name!r} (it has {known})")
        if name in feeds or name in raw_data:
            raise RequestError(400, f"{where}: input {name!r} is given twice")
        if item.datatype == "BYTES" or name not in specs:
            if name not in raw_inputs or item.datatype != "BYTES":
                raise RequestError(400, f"{where}: {name!r} takes " + (f"BYTES (raw {raw_inputs[name]})"
                                   if name in raw_inputs else "tensors; BYTES only go where the bundle "
                                   "pre-processes them"))
            elements = bytes_elements(memoryview(raws[i]), where) if raws else list(item.contents.bytes_contents)
            if len(elements) != math.prod(item.shape) or not elements:
                raise RequestError(400, f"{where}: {len(elements)} {raw_inputs[name]}(s) for shape {list(item.shape)}")
            raw_data[name] = elements
            continue
        feeds[name] = _tensor(item, raws[i] if raws else None, where)
    return feeds, raw_data


def _raw_bytes(value: np.ndarray) -> tuple[str, bytes]:
    if value.dtype == object:  # BYTES (classification strings): length-prefixed elements
        return "BYTES", b"".join(len(v).to_bytes(4, "little") + v for v in value.ravel())
    value = np.ascontiguousarray(value)
    data = value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
    return DATATYPE_OF.get(value.dtype.name, value.dtype.name.upper()), data


def make_grpc_server(serving: Serving, host: str, port: int, *, max_message: int) -> tuple[Any, int]:
    """The gRPC server for ``serving``, started; (the server, the port it listens on)."""
    import grpc

    from .grpc_proto import METHODS, PACKAGE, SERVICE, messages
    from .server import EXTENSIONS, SERVER_NAME, metadata

    m = messages()

    def model(name: str, version: str, context: Any) -> None:
        if name != serving.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {name!r}: this server serves {serving.name!r}")
        served = str(serving.current.version) if serving.current else "1"
        if version not in ("", served):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no version {version!r} of {name!r} (it serves version {served})")

    def server_live(request: Any, context: Any) -> Any:
        return m["ServerLiveResponse"](live=True)

    def server_ready(request: Any, context: Any) -> Any:
        return m["ServerReadyResponse"](ready=serving.state == "ready")

    def model_ready(request: Any, context: Any) -> Any:
        model(request.name, request.version, context)
        return m["ModelReadyResponse"](ready=serving.state == "ready")

    def server_metadata(request: Any, context: Any) -> Any:
        return m["ServerMetadataResponse"](name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)

    def model_metadata(request: Any, context: Any) -> Any:
        model(request.name, request.version, context)
        doc = metadata(serving)
        out = m["ModelMetadataResponse"](name=doc["name"], versions=doc["versions"], platform=doc["platform"])
        for key in ("inputs", "outputs"):
            for t in doc[key]:
                getattr(out, key).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        return out

    def model_infer(request: Any, context: Any) -> Any:
        model(request.model_name, request.model_version, context)
        if serving.state != "ready" or serving.current is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the model is not ready ({serving.state}"
                          + (f": {serving.reason}" if serving.reason else "") + ")")
        started, loaded = time.perf_counter(), serving.current
        assert loaded is not None  # ready: a version is served
        try:
            feeds, raw = decode_request(request, loaded.model.inputs, loaded.raw_inputs)
            classification = {o.name: o.parameters["classification"].int64_param for o in request.outputs
                              if "classification" in o.parameters}
            loaded, results = serving.infer(feeds, raw, classification)
        except (RequestError, FeedError) as exc:
            serving.metrics.request("grpc", 400)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message if isinstance(exc, RequestError) else str(exc))
        except Exception as exc:  # the backend failed: the client gets the reason, the server goes on
            serving.metrics.request("grpc", 500)
            context.abort(grpc.StatusCode.INTERNAL, f"inference failed: {type(exc).__name__}: {exc}")
        known = [s.name for s in loaded.model.outputs]
        wanted = [o.name for o in request.outputs] or known
        unknown = [n for n in wanted if n not in known]
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the model has no output {unknown[0]!r} (it has {known})")
        out = m["ModelInferResponse"](model_name=serving.name, model_version=str(loaded.version), id=request.id)
        for name in wanted:
            datatype, data = _raw_bytes(results[name])
            out.outputs.add(name=name, datatype=datatype, shape=list(results[name].shape))
            out.raw_output_contents.append(data)
        serving.metrics.request("grpc", 200)
        serving.metrics.latency_of(time.perf_counter() - started)
        return out

    functions = {"ServerLive": server_live, "ServerReady": server_ready, "ModelReady": model_ready,
                 "ServerMetadata": server_metadata, "ModelMetadata": model_metadata, "ModelInfer": model_infer}
    handlers = {name: grpc.unary_unary_rpc_method_handler(
        functions[name], request_deserializer=m[f"{name}Request"].FromString,
        response_serializer=m[f"{name}Response"].SerializeToString) for name in METHODS}
    server = grpc.server(ThreadPoolExecutor(max_workers=16, thread_name_prefix="grpc"),
                         options=[("grpc.max_receive_message_length", max_message),
                                  ("grpc.max_send_message_length", max_message)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(f"{PACKAGE}.{SERVICE}", handlers),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} for gRPC")
    server.start()
    return server, bound

