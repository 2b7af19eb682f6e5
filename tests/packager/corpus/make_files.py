"""Regenerate the corpus's binary inputs (.npz, .onnx): python tests/packager/corpus/make_files.py.

The files are committed; this script documents exactly how each one is broken.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def x(n: int = 8, shape: tuple[int, ...] = (1, 4, 4), dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(1).random((n, *shape)).astype(dtype)


def npz_files() -> None:
    d = HERE / "data"
    d.mkdir(exist_ok=True)
    np.savez(d / "wrong_name.npz", image=x())
    np.savez(d / "wrong_shape.npz", x=x(shape=(1, 8, 8)))
    np.savez(d / "wrong_dtype.npz", x=x().astype(np.float16))
    nan = x()
    nan[3, 0, 1, 1] = np.nan
    np.savez(d / "nan.npz", x=nan)
    inf = x()
    inf[0, 0, 0, 0] = np.inf
    np.savez(d / "inf.npz", x=inf)
    np.savez(d / "pickled.npz", x=np.array([{"evil": "object"}, None], dtype=object))
    np.savez(d / "no_samples.npz", x=x(n=0))
    np.savez(d / "no_arrays.npz")
    (d / "garbage.npz").write_bytes(b"this is not a zip archive\x00\x01\x02" * 4)
    (d / "calib.csv").write_text("0.1,0.2\n")
    # an .npz whose member is a truncated .npy: the zip is fine, the array is not
    buf = io.BytesIO()
    np.lib.format.write_array(buf, x())
    with zipfile.ZipFile(d / "truncated.npz", "w") as zf:
        zf.writestr("x.npy", buf.getvalue()[:100])


def linear_model(input_name: str = "x", op: tuple[str, str] | None = None) -> onnx.ModelProto:
    """x [batch,1,4,4] -> Flatten -> MatMul W[16,5] -> scores [batch,5]; ``op`` adds a custom node."""
    w = numpy_helper.from_array(np.random.default_rng(0).random((16, 5)).astype(np.float32), "W")
    nodes = [helper.make_node("Flatten", [input_name], ["flat"], axis=1)]
    opsets = [helper.make_opsetid("", 17)]
    last = "flat"
    if op:
        domain, op_type = op
        nodes.append(helper.make_node(op_type, ["flat"], ["fancy"], domain=domain))
        opsets.append(helper.make_opsetid(domain, 1))
        last = "fancy"
    nodes.append(helper.make_node("MatMul", [last, "W"], ["scores"]))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 5])], [w])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgepack-corpus")
    model.ir_version = 8
    return model


def onnx_files() -> None:
    d = HERE / "onnx"
    d.mkdir(exist_ok=True)
    onnx.save(linear_model(), d / "good.onnx")
    onnx.save(linear_model(input_name="input"), d / "renamed_input.onnx")
    onnx.save(linear_model(op=("com.example.edgepack", "FancyActivation")), d / "custom_op.onnx")
    (d / "garbage.onnx").write_bytes(bytes(range(256)) * 2)
    (d / "empty.onnx").write_bytes(b"")
    good = (d / "good.onnx").read_bytes()
    (d / "truncated.onnx").write_bytes(good[: len(good) // 2])


if __name__ == "__main__":
    npz_files()
    onnx_files()
