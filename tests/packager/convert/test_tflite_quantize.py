"""ai-edge-quantizer's int8 runs in a spawned child (packager/convert/tflite_quantize.py): a native
abort there (XNNPACK aborted on an exported GPT-2's int8 model) must become the candidate's reason,
not kill the build. The fault is made real here: the child is sent SIGABRT, what a native abort
raises, while it works, and the test checks it died of it."""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

from packager.convert.tflite_quantize import quantize_static
from packager.errors import UnsupportedError

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_quantizer")


@pytest.fixture(scope="module")
def float_model() -> bytes:
    """x float32[1, 8] -> y float32[1, 4]: Dense + ReLU, seeded; its serving signature's input is x."""
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(8,), batch_size=1, name="x")
    model = keras.Model(inp, keras.layers.Dense(4, activation="relu", name="y")(inp))
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def _rows(n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"x": rng.random((1, 8), dtype=np.float32)} for _ in range(n)]


def test_int8_comes_back_from_the_child(float_model: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter
    int8, record, _, table = quantize_static(float_model, _rows(16), per_channel=True, int8_io=True)
    assert record is None and table is None  # no repair asked, no table feeds given
    interp = Interpreter(model_content=int8)
    interp.allocate_tensors()
    [detail] = interp.get_input_details()
    assert detail["dtype"] == np.int8 and detail["quantization"][0] > 0  # int8 io with a real scale


def test_a_child_that_dies_natively_is_the_candidates_reason(float_model: bytes) -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            quantize_static(float_model, _rows(16), per_channel=True, int8_io=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    child = None
    deadline = time.monotonic() + 120
    while child is None and time.monotonic() < deadline and worker.is_alive():
        child = next((p for p in multiprocessing.active_children() if p.pid not in before), None)
        time.sleep(0.005)
    assert child is not None and child.pid is not None, "the quantizer's child process never started"
    os.kill(child.pid, signal.SIGABRT)  # what a native abort in LiteRT's kernels does to the process
    worker.join(timeout=300)
    assert child.exitcode == -signal.SIGABRT  # it really died of the signal
    error = outcome.get("error")
    assert isinstance(error, UnsupportedError), outcome
    assert "LiteRT crashed natively in quantization or a first run of the int8 model" in str(error)
    assert "signal 6" in str(error) and error.hint == "use an onnx int8 candidate for this model"
