"""Run by the KServe SDK's own Python (scripts/side_env.py), not by pytest: query a server's gRPC
service with ``kserve.InferenceGRPCClient``, typed contents and raw contents, and save what it got.

    python kserve_grpc_client.py HOST:PORT MODEL INPUTS.npz OUT.npz
"""
from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

DATATYPES = {"float32": "FP32", "int64": "INT64", "int32": "INT32", "uint8": "UINT8", "int8": "INT8"}


async def main(address: str, model: str, inputs: str, out: str) -> None:
    feeds = dict(np.load(inputs))
    client = InferenceGRPCClient(address, timeout=60)
    got: dict[str, np.ndarray] = {}
    for raw in (False, True):  # typed InferTensorContents, then raw_input_contents
        tensors = []
        for name, value in feeds.items():
            tensor = InferInput(name=name, shape=list(value.shape), datatype=DATATYPES[value.dtype.name])
            tensor.set_data_from_numpy(value, binary_data=raw)
            tensors.append(tensor)
        result = await client.infer(InferRequest(model_name=model, infer_inputs=tensors, request_id="g"))
        for output in result.outputs:
            got[f"{'raw' if raw else 'typed'}:{output.name}"] = output.as_numpy()
    state = {"live": await client.is_server_live(), "ready": await client.is_server_ready(),
             "model_ready": await client.is_model_ready(model)}
    await client.close()
    np.savez(out, **got)
    print(json.dumps(state))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
