"""Run by the KServe SDK's own Python (scripts/side_env.py), not by pytest: query a server with
``kserve.InferenceRESTClient`` (protocol v2), JSON and binary tensors, and save what it got.

    python kserve_client.py URL MODEL INPUTS.npz OUT.npz
"""
from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

DATATYPES = {"float32": "FP32", "int64": "INT64", "int32": "INT32", "uint8": "UINT8", "int8": "INT8"}


async def main(url: str, model: str, inputs: str, out: str) -> None:
    feeds = dict(np.load(inputs))
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    got: dict[str, np.ndarray] = {}
    for binary in (False, True):
        tensors = []
        for name, value in feeds.items():
            tensor = InferInput(name=name, shape=list(value.shape), datatype=DATATYPES[value.dtype.name])
            tensor.set_data_from_numpy(value, binary_data=binary)
            tensors.append(tensor)
        result = await client.infer(url, InferRequest(model_name=model, infer_inputs=tensors, request_id="k"),
                                    model_name=model)
        for output in result.outputs:
            got[f"{'binary' if binary else 'json'}:{output.name}"] = output.as_numpy()
    state = {"live": await client.is_server_live(url), "ready": await client.is_server_ready(url),
             "model_ready": await client.is_model_ready(url, model)}
    await client.close()
    np.savez(out, **got)
    print(json.dumps(state))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
