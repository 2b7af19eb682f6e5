"""ONNX LSTM and GRU as ``nn.LSTM`` / ``nn.GRU`` (their weights reordered: ONNX stacks the LSTM
gates i, o, f, c and the GRU gates z, r, h; torch i, f, g, o and r, z, n), so the trace keeps the
sequence length dynamic and int8 dynamic quantization takes them. What torch cannot express
(peepholes, clipping, other activations, a GRU resetting before its linear map, per-sample
lengths) is named as the reason the node is not converted."""
from __future__ import annotations

from typing import Any

import numpy as np

from .registry import OpCall, Tensor, module_op, op

_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def _reorder(blocks: np.ndarray, kind: str) -> np.ndarray:
    """Gate blocks stacked along axis 0, ONNX order -> torch order."""
    parts = np.split(blocks, len(_ORDER[kind]), axis=0)
    return np.concatenate([parts[i] for i in _ORDER[kind]], axis=0)


def _why_not(c: OpCall, kind: str) -> str | None:
    acts = c.attr("activations")
    directions = c.attr("direction", "forward")
    directions = directions.decode() if isinstance(directions, bytes) else directions
    if acts is not None and [a.decode() if isinstance(a, bytes) else a for a in acts] not in (
            _DEFAULT_ACTS[kind], _DEFAULT_ACTS[kind] * 2):
        return f"activations {acts}"
    if c.attr("clip") is not None:
        return "cell clipping"
    if directions == "reverse":
        return "a reverse-only direction"
    if c.attr("layout", 0):
        return "layout=1"
    if kind == "LSTM" and (c.attr("input_forget", 0) or c.input(7) is not None):
        return "peepholes or input_forget"
    if kind == "GRU" and not c.attr("linear_before_reset", 0):
        return "linear_before_reset=0 (torch's GRU applies the reset gate after its linear map)"
    if c.input(4) is not None and c.const(4) is None:
        return "per-sample sequence lengths computed at run time"
    if c.const(1) is None or c.const(2) is None or (c.input(3) is not None and c.const(3) is None):
        return "weights computed at run time"
    return None


def _make(c: OpCall, kind: str) -> Any:
    why = _why_not(c, kind)
    if why is not None:
        raise c.fail(why)
    import torch
    w, r = c.const(1), c.const(2)
    assert w is not None and r is not None
    dirs, gates_h, inputs = w.shape
    hidden = int(c.attr("hidden_size") or r.shape[-1])
    b = c.const(3)
    cls = torch.nn.LSTM if kind == "LSTM" else torch.nn.GRU
    rnn = cls(inputs, hidden, num_layers=1, bias=True, batch_first=False, bidirectional=dirs == 2)
    params = dict(rnn.named_parameters())
    with torch.no_grad():
        for d in range(dirs):
            suffix = "_reverse" if d == 1 else ""
            bias = b[d] if b is not None else np.zeros(2 * gates_h, dtype=w.dtype)
            params[f"weight_ih_l0{suffix}"].copy_(torch.from_numpy(_reorder(w[d], kind).copy()))
            params[f"weight_hh_l0{suffix}"].copy_(torch.from_numpy(_reorder(r[d], kind).copy()))
            params[f"bias_ih_l0{suffix}"].copy_(torch.from_numpy(_reorder(bias[:gates_h], kind).copy()))
            params[f"bias_hh_l0{suffix}"].copy_(torch.from_numpy(_reorder(bias[gates_h:], kind).copy()))
    return rnn.eval()


@module_op("LSTM", holds={1, 2, 3})
def lstm_module(c: OpCall) -> Any:
    return _make(c, "LSTM")


@module_op("GRU", holds={1, 2, 3})
def gru_module(c: OpCall) -> Any:
    return _make(c, "GRU")


def _lengths_are_full(c: OpCall, x: Tensor) -> None:
    lengths = c.const(4)
    if lengths is not None and not bool(np.all(lengths == x.shape[0])):
        raise c.fail("per-sample sequence lengths shorter than the sequence")


@op("LSTM", "GRU")
def rnn(c: OpCall) -> tuple[Tensor, ...]:
    import torch
    x = c.inputs[0]
    _lengths_are_full(c, x)
    rnn_module = c.module
    dirs = 2 if rnn_module.bidirectional else 1
    hidden = rnn_module.hidden_size
    batch: Any = torch._shape_as_tensor(x)[1]  # a 0-d tensor: the trace keeps the batch dynamic
    h0 = c.input(5)
    if h0 is None:
        h0 = torch.zeros([dirs, batch, hidden], dtype=x.dtype)
    if c.op_type == "LSTM":
        c0 = c.input(6)
        if c0 is None:
            c0 = torch.zeros([dirs, batch, hidden], dtype=x.dtype)
        y, (h_n, c_n) = rnn_module(x, (h0, c0))
        states: tuple[Tensor, ...] = (h_n, c_n)
    else:
        y, h_n = rnn_module(x, h0)
        states = (h_n,)
    seq = torch._shape_as_tensor(x)[0]
    y = y.reshape([seq, batch, dirs, hidden]).permute(0, 2, 1, 3)  # ONNX Y: [seq, directions, batch, hidden]
    return ((y,) + states)[:max(1, c.n_outputs)]
