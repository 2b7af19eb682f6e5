"""The signature of a torch model, learned by running it.

An ``nn.Module`` states no signature, so it is run once on the example inputs (``examples``): the
inputs' and outputs' dtypes and shapes are what it took and returned. Whether axis 0 is a batch is
probed by running it again at twice the batch and checking each sample's result is unchanged; a
sequence axis (axis 1 of token ids, masks, waveforms) by running it at another length
(``dynamic_axes``).
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from .dynamic_axes import AxisSpec, Runner, apply_specs, probe_sequence_axes
from .examples import as_array, example_feeds
from .signature import DEFAULT_BATCH, RETURN_THE_MODEL, Inferred, Tensor, guess_layout


def _forward_params(module: Any) -> tuple[list[str], int, str]:
    """forward()'s positional argument names, how many are required, and its printed signature."""
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return [], 0, "forward(...)"
    params = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [p.name for p in params], sum(p.default is p.empty for p in params), f"forward{sig}"


def _one_line(exc: BaseException, limit: int) -> str:
    """``exc`` as 'Type: message' on one line, the message cut at ``limit`` characters."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:limit]}"


def _outputs_of(result: Any) -> list[tuple[str, Any]]:
    """forward()'s result as (name, tensor) pairs: a tensor, a tuple/list or a dict of tensors."""
    if isinstance(result, dict):
        pairs = [(str(k), v) for k, v in result.items()]
    elif isinstance(result, (tuple, list)):
        pairs = [(f"output_{i}", v) for i, v in enumerate(result)]
    else:
        pairs = [("output", result)]
    bad = [n for n, v in pairs if not hasattr(v, "detach")]
    if bad or not pairs:
        raise SourceError(f"forward() returned {type(result).__name__} with non-tensor output(s) {bad}",
                          where="--example-input",
                          hint="edgepack packages models whose forward() returns a tensor, a tuple/list "
                               "or a dict of tensors (not nested)")
    return pairs


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.allclose(a, b, rtol=1e-3, atol=1e-4, equal_nan=True))
    return bool(np.array_equal(a, b))


def _probe_batch(module: Any, torch: Any, feeds: dict[str, np.ndarray],
                 outs: list[tuple[str, np.ndarray]]) -> str | None:
    """None when the model runs at twice the example batch with the same per-sample results; else why not."""
    if any(a.ndim == 0 for a in feeds.values()):
        return "the inputs do not share a leading axis"
    firsts = {a.shape[0] for a in feeds.values()}
    if len(firsts) != 1:
        return "the inputs do not share a leading axis"
    (b,) = firsts
    doubled = [torch.from_numpy(np.ascontiguousarray(np.concatenate([a, a]))) for a in feeds.values()]
    try:
        with torch.no_grad():
            result = _outputs_of(module(*doubled))
    except Exception as exc:  # noqa: BLE001 - the model just does not take another batch size
        return f"it fails at batch {2 * b} ({_one_line(exc, 160)})"
    if len(result) != len(outs):
        return f"it returns a different number of outputs at batch {2 * b}"
    for (name, one), (_, two) in zip(outs, result, strict=True):
        two = as_array(two, f"output {name!r}")
        if not one.ndim or one.shape[0] != b or two.shape != (2 * b, *one.shape[1:]):
            return f"output {name!r} does not follow the batch ({list(one.shape)} at batch {b}, " \
                   f"{list(two.shape)} at batch {2 * b})"
        if not (_close(two[:b], one) and _close(two[b:], one)):
            return f"output {name!r} of a sample changes with the batch it is in"
    return None


def _runner(module: Any, torch: Any) -> Runner:
    """The model as ``probe_sequence_axes`` calls it: outputs, or why it failed."""
    def run(feeds: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]] | str:
        try:
            with torch.no_grad():
                result = module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in feeds.values()])
            return [(n, as_array(v, f"output {n!r}")) for n, v in _outputs_of(result)]
        except Exception as exc:  # noqa: BLE001 - the model just does not take that length
            return _one_line(exc, 160)
    return run


def _batch_from_probe(why_not: str | None, batch_dim: str | None, fixed_batch: bool) -> tuple[str | None, list[str]]:
    """The batch symbol from the probe's answer (``why_not``) and the options, with notes."""
    if fixed_batch:
        return None, []
    if batch_dim is not None:
        if why_not:
            return batch_dim, [f"--batch-dim {batch_dim}: axis 0 made symbolic as asked, but the model does "
                               f"not look batch-independent: {why_not}"]
        return batch_dim, []
    if why_not is None:
        return DEFAULT_BATCH, []
    return None, [f"axis 0 stays fixed: the model does not run at another batch size ({why_not}); "
                  "pass --batch-dim batch to make it symbolic anyway"]


def infer_torch(entry: str, cwd: Path, module: Any, example_inputs: Sequence[str], batch_dim: str | None,
                fixed_batch: bool, kwargs: dict[str, Any], dynamic: Sequence[AxisSpec] = (),
                static_axes: bool = False) -> Inferred:
    """``module``'s signature from a run on ``example_inputs``.

    ``default_name``/``default_dir`` are left at "model" and ``cwd``: they follow from the entry
    point, and its caller (``infer._infer_entry``) sets them as for a Keras entry point."""
    from ..sources.torch_source import _import_torch
    torch = _import_torch()
    if not isinstance(module, torch.nn.Module):
        raise SourceError(f"{entry} returned {type(module).__name__}, not a torch.nn.Module", where=entry,
                          hint=RETURN_THE_MODEL)
    module.eval()
    params, required, signature = _forward_params(module)
    if not example_inputs:
        raise SourceError(f"a torch model needs an example input to learn its signature ({signature})",
                          where=entry,
                          hint=f"pass one --example-input per argument of {signature}, in order: dims like "
                               "1x3x224x224 (random float32; 1x16:int64 for another dtype), or an .npy file; "
                               "or once, an .npz keyed by input name or data.py:function returning the "
                               "inputs")
    feeds = example_feeds(example_inputs, params, cwd)
    if len(feeds) < required:
        missing = ", ".join(params[len(feeds):required])
        raise SourceError(f"{signature} takes {required} input(s), {len(feeds)} example input(s) given "
                          f"(none for {missing})", where="--example-input",
                          hint="pass one --example-input per argument, in order")
    shown = ", ".join(f"{n}: {a.dtype} {list(a.shape)}" for n, a in feeds.items())
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in feeds.values()]
    try:
        with torch.no_grad():
            result = module(*tensors)
    except Exception as exc:  # user code: any failure is reported
        raise SourceError(f"running {entry} on the example input(s) ({shown}) failed: {_one_line(exc, 400)}",
                          where="--example-input",
                          hint=f"give one example per argument of {signature}, in order, with the shapes and "
                               "dtypes the model expects (e.g. 1x3x224x224 or name=1x16:int64)") from exc
    outs = [(n, as_array(v, f"output {n!r}")) for n, v in _outputs_of(result)]
    why_not = None if fixed_batch else _probe_batch(module, torch, feeds, outs)
    batch, notes = _batch_from_probe(why_not, batch_dim, fixed_batch)
    b = next(iter(feeds.values())).shape[0] if batch else None
    seq_in: dict[str, dict[int, str]] = {}
    seq_out: dict[str, dict[int, str]] = {}
    if not static_axes and not dynamic:
        seq_in, seq_out, seq_notes = probe_sequence_axes(feeds, outs, _runner(module, torch), batch)
        notes += seq_notes
    shapes: dict[str, list[int | str]] = {}
    for n, a in feeds.items():
        shape: list[int | str] = list(a.shape)
        if batch and shape:
            shape[0] = batch
        for axis, sym in seq_in.get(n, {}).items():
            shape[axis] = sym
        shapes[n] = shape
    notes += apply_specs(list(dynamic), shapes)
    inputs = [Tensor(n, str(a.dtype), shapes[n], guess_layout("torch", shapes[n])) for n, a in feeds.items()]
    outputs = []
    for n, a in outs:
        shape = list(a.shape)
        if batch and shape and shape[0] == b:
            shape[0] = batch
        for axis, sym in seq_out.get(n, {}).items():
            shape[axis] = sym
        outputs.append(Tensor(n, str(a.dtype), shape))
    if len(set(feeds)) > len(params) and params:
        notes.append(f"forward() takes {len(params)} positional argument(s) but {len(feeds)} example inputs "
                     "were given; the model is called with them in order")
    return Inferred(framework="torch", entry=entry, path=None, base=cwd, kwargs=kwargs, inputs=inputs,
                    outputs=outputs, batch=batch, default_name="model", default_dir=cwd,
                    description=f"{type(module).__name__} ({entry})", notes=notes)
