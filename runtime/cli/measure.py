"""``bench`` and ``tune``: latency of the selected candidate, and every candidate timed to
record the fastest (``runtime.tuning``)."""
from __future__ import annotations

import argparse
import sys
import time

from ..fileio import check_writable
from ..golden import first_sample, load_golden
from . import EXIT_FAIL, EXIT_OK
from .common import (
    check_inputs_finite,
    device_info,
    emit_json,
    load_model,
    open_checked,
    read_inputs,
    selection_text,
    signature_doc,
    verify_files,
)
from .verify import check_report_path, publish


def cmd_bench(args: argparse.Namespace) -> int:
    """Load time, first inference, then latency percentiles and throughput."""
    check_report_path(args)
    bundle = open_checked(args, verify=False)
    t0 = time.perf_counter()
    verify_files(bundle)
    verify_ms = (time.perf_counter() - t0) * 1e3
    if args.input:
        feeds = read_inputs(args.input, bundle.signature.inputs, bundle)
    else:
        g_in, _, batched = load_golden(bundle)
        feeds = first_sample(g_in, batched, batch=args.batch)
    warnings = check_inputs_finite(args, feeds)
    t0 = time.perf_counter()
    model = load_model(args, bundle)
    load_ms = (time.perf_counter() - t0) * 1e3
    with model:
        from ..tuning.bench import benchmark
        result = benchmark(model, feeds, warmup=args.warmup, runs=args.runs)
        result.load_ms = load_ms
        dev = device_info()
        doc = {"ok": True, "candidate": model.candidate_spec.id, "bundle": bundle.name,
               "target": bundle.target.get("name"), "providers": model.providers,
               "degraded": model.degraded, "backend_version": model.backend_version,
               "verify_ms": verify_ms, "signature_check": signature_doc(bundle),
               **result.to_dict(), "device": dev, "warnings": warnings}
        if publish(args, "bench", doc):
            print(f"device: {dev['platform']} ({dev['machine']}, {dev['cpus']} cpus, "
                  f"python {dev['python']})")
            print(selection_text(model) + f"  backend {model.backend_version or '-'}")
            print(f"hash check {verify_ms:.1f} ms, load {load_ms:.1f} ms, "
                  f"first inference {result.first_ms:.2f} ms")
            print(f"{result.runs} runs after {result.warmup} warmup, batch {result.batch}: "
                  f"p50 {result.p50_ms:.3f} ms  p90 {result.p90_ms:.3f} ms  "
                  f"p99 {result.p99_ms:.3f} ms  (mean {result.mean_ms:.3f}, "
                  f"min {result.min_ms:.3f}, max {result.max_ms:.3f})")
            print(f"throughput: {result.inferences_per_s:.1f} inferences/s, "
                  f"{result.samples_per_s:.1f} samples/s")
            if args.report:
                print(f"wrote {args.report}")
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    """Verify and time every candidate that loads; record the fastest that passes beside the
    bundle, for load() on this device."""
    from ..tuning.tune import NO_WRITE_HINT, format_measurements, tune
    from ..tuning.tuned import tuned_path

    bundle = open_checked(args)
    if not args.no_write:  # a read-only folder: say so before minutes of measuring
        check_writable(tuned_path(bundle), instead=NO_WRITE_HINT)
    result = tune(bundle, runs=args.runs, warmup=args.warmup, max_seconds=args.max_seconds,
                  strict=args.strict, write=not args.no_write)
    warning = ("emulated: timings under emulation are not device timings (" + result.emulation
               + "); the choice is recorded with \"emulated\": true") if result.emulated else None
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        emit_json({"ok": result.chosen is not None, "bundle": bundle.name,
                    "chosen": result.chosen, "file": str(result.path),
                    "written": result.written, "emulated": result.emulated,
                    "warning": warning, "fingerprint": result.fingerprint,
                    "tuned_at": result.entry["tuned_at"], "settings": result.entry["settings"],
                    "measurements": result.measurements})
    else:
        print(f"bundle: {bundle.name}  target: {bundle.target.get('name', '-')}")
        print(format_measurements(result.measurements))
        if result.chosen is None:
            print("no candidate loads and passes golden parity here; nothing written",
                  file=sys.stderr)
        else:
            row = next(r for r in result.measurements if r["candidate"] == result.chosen)
            print(f"chosen: {result.chosen} (p50 {row['p50_ms']:.3f} ms)")
            print(f"wrote {result.path}" if result.written else "not written (--no-write)")
    return EXIT_OK if result.chosen is not None else EXIT_FAIL
