"""``info`` and ``run``: what loads here and why, and one inference. The cold path: this module
and ``common`` are all ``python -m runtime run`` imports of the CLI."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import code_guard
from ..bundle import Bundle
from ..compare import looks_like_scores
from ..fileio import atomic_write, check_writable
from ..golden import first_sample, load_golden
from ..model import choose
from ..select import format_decisions
from ..signature import TensorSpec
from . import EXIT_FAIL, EXIT_OK
from .common import (
    check_inputs_finite,
    device_info,
    emit_json,
    load_model,
    open_checked,
    read_inputs,
    refuse_inside_bundle,
    selection_text,
    signature_doc,
    signature_line,
)


def signature_lines(bundle: Bundle) -> list[str]:
    lines = ["inputs:"] + ["  " + s.describe() for s in bundle.signature.inputs]
    lines += ["outputs:"] + ["  " + s.describe() + (" (scores)" if s.scores else "")
                             for s in bundle.signature.outputs]
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    """Signature and the decision table for every candidate."""
    bundle = open_checked(args)
    chosen, decisions, tuning = choose(bundle, prefer=args.prefer, strict=args.strict,
                                       probe_all=True, tuned=not args.no_tuned)
    if chosen is not None:
        chosen[0].close()
    selected = chosen[1].id if chosen else None
    if args.json:
        emit_json({"ok": chosen is not None, "bundle": bundle.name, "root": str(bundle.root),
                    "target": bundle.target, "signature": bundle.signature.to_dict(),
                    "selected": selected, "candidates": [d.to_dict() for d in decisions],
                    "tuning": tuning.to_dict(), "warnings": bundle.warnings,
                    "signature_check": signature_doc(bundle), "device": device_info(),
                    "runtime_code": code_guard.STATE.to_dict()})
    else:
        print(f"bundle: {bundle.name}  target: {bundle.target.get('name', '-')}")
        if code_guard.STATE.active:
            print(f"runtime code: this bundle's, checked source only; compiled code cache: "
                  f"{code_guard.STATE.cache_note}")
        if signature_line(bundle):
            print(signature_line(bundle))
        print("\n".join(signature_lines(bundle)))
        print("candidates:")
        print(format_decisions(decisions, indent="  "))
        print(f"tuning: {tuning.text}")
        for w in bundle.warnings:
            print(f"warning: {w}")
        if selected is None:
            print("no candidate loads on this device", file=sys.stderr)
    return EXIT_OK if chosen is not None else EXIT_FAIL


def _jsonable(arr: np.ndarray) -> Any:
    """Array values as lists; NaN/inf become null so the document stays strict JSON."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        values = arr.astype(object)
        values[~np.isfinite(arr)] = None
        return values.tolist()
    return arr.tolist()


def _summary(spec: TensorSpec, arr: np.ndarray) -> str:
    flat = arr.ravel()
    head = np.array2string(flat[:6], precision=4, separator=", ")
    text = f"{spec.name}: {arr.dtype}{list(arr.shape)} first {head}"
    if spec.scores or (spec.scores is None and looks_like_scores(arr)):
        top = np.argmax(arr, axis=-1).ravel()[:10].tolist()
        text += f" argmax {top}"
    return text


def _ranked(bundle: Bundle, outputs: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    """The top-k (label, score) per sample of each output the bundle post-processes."""
    if bundle.processing is None or not bundle.processing.outputs:
        return {}
    from ..prepost import Processor
    processor = Processor(bundle)
    out = {}
    for name in bundle.processing.outputs:
        _, ranked = processor.post(name, outputs[name])
        if ranked is not None:
            out[name] = ranked
    return out


def _npz_path(path: str) -> str:
    """Where ``--output`` goes: np.savez's rule, ``.npz`` added when missing."""
    return path if path.endswith(".npz") else path + ".npz"


def _output_where(args: argparse.Namespace) -> tuple[str, str]:
    return (f"--output {args.output}",
            f"or write elsewhere: --output /a/writable/folder/{Path(_npz_path(args.output)).name}")


def cmd_run(args: argparse.Namespace) -> int:
    """One inference on given (or golden) inputs."""
    if args.output:
        refuse_inside_bundle(args.output, "--output", args.bundle)
        where, instead = _output_where(args)
        check_writable(_npz_path(args.output), where=where, instead=instead)
    bundle = open_checked(args)
    if args.input or args.text:
        feeds = read_inputs(args.input, bundle.signature.inputs, bundle, args.text)
        source = "--input" if args.input else "--text"
    else:
        g_in, _, batched = load_golden(bundle)
        feeds = first_sample(g_in, batched, batch=g_in[next(iter(g_in))].shape[0] if batched else 1)
        source = "golden inputs"
    warnings = check_inputs_finite(args, feeds)
    written = None
    with load_model(args, bundle) as model:
        outputs = model.run(feeds)
        ranked = _ranked(bundle, outputs)
        if args.output:
            arrays: dict[str, Any] = dict(outputs)  # np.savez's **kwds (not its allow_pickle)
            written = str(atomic_write(_npz_path(args.output),
                                       lambda fh: np.savez(fh, **arrays),
                                       where=where, instead=instead))
        if args.json:
            doc: dict[str, Any] = {"ok": True, "candidate": model.candidate_spec.id,
                                   "providers": model.providers, "degraded": model.degraded,
                                   "input_source": source, "warnings": warnings,
                                   "signature_check": signature_doc(bundle), "outputs": {}}
            for spec in model.outputs:
                arr = outputs[spec.name]
                entry: dict[str, Any] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
                if args.values:
                    entry["values"] = _jsonable(arr)
                if spec.name in ranked:
                    entry["top_k"] = [[r.to_dict() for r in row] for row in ranked[spec.name]]
                doc["outputs"][spec.name] = entry
            if written is not None:
                doc["written"] = written
            emit_json(doc)
        else:
            print(selection_text(model) + f"  (input: {source})")
            for spec in model.outputs:
                print(_summary(spec, outputs[spec.name]))
                for i, row in enumerate(ranked.get(spec.name, [])):
                    best = ", ".join(f"{r.label if r.label is not None else r.index} {r.score:.3f}" for r in row)
                    print(f"  sample {i}: {best}")
            if written is not None:
                print(f"wrote {written}")
    return EXIT_OK
