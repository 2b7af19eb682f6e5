"""The Open Inference Protocol v2 gRPC messages (``inference.GRPCInferenceService``, KServe's
``grpc_predict_v2.proto`` and Triton's ``grpc_service.proto`` agree on these), built in code.

No ``protoc`` and no generated ``_pb2`` module: the file descriptor is assembled here with
protobuf's own ``descriptor_pb2`` and its message classes made by ``message_factory``, so the
runtime carries no generated code tied to one protobuf release (any protobuf >= 4 works). Field
numbers follow the published proto; clients built from it (tritonclient, the KServe SDK) talk to
it unchanged. Imported only by ``serve --grpc-port``.
"""
from __future__ import annotations

from typing import Any

PACKAGE = "inference"
SERVICE = "GRPCInferenceService"
FILE = "edgepack_grpc_predict_v2.proto"
_SCALARS = ("bool", "string", "int64", "int32", "uint32", "uint64", "float", "double", "bytes")

# message -> [(number, name, type, repeated)]
MESSAGES: dict[str, list[tuple[int, str, str, bool]]] = {
    "ServerLiveRequest": [], "ServerLiveResponse": [(1, "live", "bool", False)],
    "ServerReadyRequest": [], "ServerReadyResponse": [(1, "ready", "bool", False)],
    "ModelReadyRequest": [(1, "name", "string", False), (2, "version", "string", False)],
    "ModelReadyResponse": [(1, "ready", "bool", False)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [(1, "name", "string", False), (2, "version", "string", False),
                               (3, "extensions", "string", True)],
    "ModelMetadataRequest": [(1, "name", "string", False), (2, "version", "string", False)],
    "ModelMetadataResponse": [(1, "name", "string", False), (2, "versions", "string", True),
                              (3, "platform", "string", False), (4, "inputs", ".TensorMetadata", True),
                              (5, "outputs", ".TensorMetadata", True)],
    "ModelMetadataResponse.TensorMetadata": [(1, "name", "string", False), (2, "datatype", "string", False),
                                             (3, "shape", "int64", True)],
    "ModelInferRequest": [(1, "model_name", "string", False), (2, "model_version", "string", False),
                          (3, "id", "string", False), (4, "parameters", "map", True),
                          (5, "inputs", ".InferInputTensor", True), (6, "outputs", ".InferRequestedOutputTensor", True),
                          (7, "raw_input_contents", "bytes", True)],
    "ModelInferRequest.InferInputTensor": [(1, "name", "string", False), (2, "datatype", "string", False),
                                           (3, "shape", "int64", True), (4, "parameters", "map", True),
                                           (5, "contents", "InferTensorContents", False)],
    "ModelInferRequest.InferRequestedOutputTensor": [(1, "name", "string", False), (2, "parameters", "map", True)],
    "ModelInferResponse": [(1, "model_name", "string", False), (2, "model_version", "string", False),
                           (3, "id", "string", False), (4, "parameters", "map", True),
                           (5, "outputs", ".InferOutputTensor", True), (6, "raw_output_contents", "bytes", True)],
    "ModelInferResponse.InferOutputTensor": [(1, "name", "string", False), (2, "datatype", "string", False),
                                             (3, "shape", "int64", True), (4, "parameters", "map", True),
                                             (5, "contents", "InferTensorContents", False)],
    "InferParameter": [(1, "bool_param", "bool", False), (2, "int64_param", "int64", False),
                       (3, "string_param", "string", False), (4, "double_param", "double", False),
                       (5, "uint64_param", "uint64", False)],
    "InferTensorContents": [(1, "bool_contents", "bool", True), (2, "int_contents", "int32", True),
                            (3, "int64_contents", "int64", True), (4, "uint_contents", "uint32", True),
                            (5, "uint64_contents", "uint64", True), (6, "fp32_contents", "float", True),
                            (7, "fp64_contents", "double", True), (8, "bytes_contents", "bytes", True)],
}
METHODS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")


def _message(name: str, fields: list[tuple[int, str, str, bool]]) -> Any:
    """One message; ``name`` is dotted for a nested one. Type names: a scalar, "map" (a
    map<string, InferParameter> of this message), ".Nested" (nested in this message) or a top-level
    message of the package."""
    from google.protobuf import descriptor_pb2  # the serve-grpc extra: imported when gRPC is served
    F = descriptor_pb2.FieldDescriptorProto
    msg = descriptor_pb2.DescriptorProto(name=name.rpartition(".")[2])
    if name == "InferParameter":
        msg.oneof_decl.add(name="parameter_choice")
    for number, fname, ftype, repeated in fields:
        field = msg.field.add(name=fname, number=number, label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if ftype in _SCALARS:
            field.type = getattr(F, f"TYPE_{ftype.upper()}")
        else:
            field.type = F.TYPE_MESSAGE
            field.type_name = (f".{PACKAGE}.{name}.ParametersEntry" if ftype == "map" else
                               f".{PACKAGE}.{name}{ftype}" if ftype.startswith(".") else f".{PACKAGE}.{ftype}")
        if name == "InferParameter":
            field.oneof_index = 0
    if any(ftype == "map" for _, _, ftype, _ in fields):
        entry = msg.nested_type.add(name="ParametersEntry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                        type_name=f".{PACKAGE}.InferParameter")
    return msg


def _file() -> Any:
    from google.protobuf import descriptor_pb2
    fd = descriptor_pb2.FileDescriptorProto(name=FILE, package=PACKAGE, syntax="proto3")
    tops: dict[str, Any] = {}
    for name, fields in MESSAGES.items():  # a nested message follows the one it is nested in
        outer, _, inner = name.partition(".")
        msg = _message(name, fields)
        if inner:
            tops[outer].nested_type.append(msg)
        else:
            tops[name] = msg
    fd.message_type.extend(tops.values())
    service = fd.service.add(name=SERVICE)
    for method in METHODS:
        service.method.add(name=method, input_type=f".{PACKAGE}.{method}Request",
                           output_type=f".{PACKAGE}.{method}Response")
    return fd


def messages() -> dict[str, Any]:
    """Message classes by name (``ModelInferRequest``, ``ModelInferRequest.InferInputTensor``, ...),
    from a pool of their own (a client's generated module in the same process does not clash)."""
    from google.protobuf import descriptor_pool, message_factory
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in MESSAGES}
