"""``python -m runtime serve``: a bundle as an Open Inference Protocol v2 service (the REST
endpoints of KServe and Triton), so the clients people already have (``tritonclient.http``, the
``kserve`` SDK, curl) talk to an edge device.

Standard library only (``http1``, a small HTTP/1.1 server): nothing to install beside the runtime
on a Pi, and the serve extra of the runtime wheel stays empty. ``protocol`` holds the JSON / binary
tensor bodies, ``server`` the endpoints, ``serving`` the state (ready only after the bundle
verified here; the version served and the one before it), ``loaded`` one verified version,
``updates`` safe updates (upload, watched folder, roll-back), ``batching`` dynamic batching,
``metrics`` the Prometheus text at ``/metrics``; ``grpc_proto`` and ``grpc_server`` the gRPC service
(``--grpc-port``, the only part that needs packages beyond the runtime: grpcio and protobuf).
Imported by the serve command alone: ``runtime`` itself never imports it.
"""
from __future__ import annotations

from .protocol import InferRequest, RequestError, decode, encode
from .server import make_server
from .serving import Serving

__all__ = ["InferRequest", "RequestError", "Serving", "decode", "encode", "make_server"]
