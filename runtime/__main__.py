"""Device CLI: ``python -m runtime {info,run,verify,bench,doctor,tune} [BUNDLE]``.

``verify`` and ``bench`` also write a self-contained HTML report with ``--report FILE``
(runtime.report_html), with or without ``--json``.

Exit codes: 0 ok; 1 no candidate loads (info), parity failed (verify), the device does not match
the bundle (doctor) or no candidate passes (tune); 2 user error (bad bundle, bad input, and the
file system refusing a read or write: disk full, read-only, permission denied, I/O error);
3 internal error (rerun with --debug for the traceback).

Files are written atomically (runtime.fileio.atomic_write): a failed write leaves nothing
partial. Float inputs holding NaN/inf are warned about (stderr, and ``warnings`` with --json)
and refused under --strict (runtime.finite).
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, code_guard
from .bundle import BUNDLE_FILE, Bundle, open_bundle
from .compare import format_parity_rows, looks_like_scores
from .errors import BundleFormatError, FeedError, FileIOError, NoCandidateError, RuntimeBundleError
from .fileio import atomic_write, cause_of, check_writable, io_error, is_fault
from .finite import nonfinite_error, nonfinite_inputs
from .golden import check_parity, first_sample, load_golden, load_npz
from .model import Model, choose, load
from .select import SELECTED, format_decisions, no_candidate_error, order_candidates, try_candidate
from .signature import TensorSpec

EXIT_OK, EXIT_FAIL, EXIT_USER, EXIT_INTERNAL = 0, 1, 2, 3


# --------------------------------------------------------------------------- helpers

def _emit_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _jsonable(arr: np.ndarray) -> Any:
    """Array values as lists; NaN/inf become null so the document stays strict JSON."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return np.where(np.isfinite(arr), arr, None).tolist()
    return arr.tolist()


def _signature_lines(bundle: Bundle) -> list[str]:
    lines = ["inputs:"] + ["  " + s.describe() for s in bundle.signature.inputs]
    lines += ["outputs:"] + ["  " + s.describe() + (" (scores)" if s.scores else "")
                             for s in bundle.signature.outputs]
    return lines


def _load_array(path: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, OSError) and is_fault(exc):  # permission denied, I/O error
            raise io_error(exc, path, "reading") from exc
        raise FeedError(f"cannot read array: {exc}", where=path,
                        hint="give a .npy file written with np.save (no pickles)") from exc
    if not isinstance(arr, np.ndarray):  # an .npz under another name
        arr.close()
        raise FeedError("not a single .npy array", where=path,
                        hint="give NAME=path.npy, or pass the .npz file itself")
    return arr


def read_inputs(args: Sequence[str], inputs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """--input values: x.npy (single-input model), NAME=path.npy (repeatable), or feeds.npz."""
    feeds: dict[str, np.ndarray] = {}

    def put(name: str, arr: np.ndarray, src: str) -> None:
        if name in feeds:
            raise FeedError("given twice", where=name, hint=f"drop one of the --input {src}")
        feeds[name] = arr

    for arg in args:
        if os.path.isfile(arg) and arg.lower().endswith(".npz"):
            for name, arr in load_npz(arg, where=arg).items():
                put(name, arr, arg)
        elif os.path.isfile(arg):
            if len(inputs) != 1:
                raise FeedError(f"the model has {len(inputs)} inputs; a bare .npy is ambiguous",
                                where=arg, hint="use NAME=path.npy for each input, or one .npz")
            put(inputs[0].name, _load_array(arg), arg)
        elif "=" in arg:
            name, path = arg.split("=", 1)
            if not os.path.isfile(path):
                raise FeedError("no such file", where=path, hint=f"check --input {arg}")
            put(name, _load_array(path), arg)
        else:
            raise FeedError("no such file", where=arg,
                            hint="use --input x.npy, --input NAME=path.npy or --input feeds.npz")
    return feeds


def _open(args: argparse.Namespace, *, verify: bool = True) -> Bundle:
    """Open the bundle; with --key, its signature is checked first (before parsing)."""
    if _is_archive_arg(args.bundle):
        _warn_unusable_tmpdir()
    try:
        bundle = open_bundle(args.bundle, public_key=args.key)  # archive faults: FileIOError
    except OSError as exc:
        raise io_error(exc, exc.filename or args.bundle, "reading") from exc
    if verify:
        _verify(bundle)
    return bundle


def _verify(bundle: Bundle) -> None:
    """The hash check; a file the machine will not let us read is an I/O error, not a bug."""
    try:
        bundle.verify()
    except OSError as exc:
        path = str(exc.filename or bundle.root)
        where = None
        if bundle.archive is not None and path.startswith(str(bundle.root)):
            # name the member of the archive, not a temp folder about to vanish
            where = f"{bundle.archive}:{bundle.root.name}{path[len(str(bundle.root)):]}"
        raise io_error(exc, path, "reading", where=where) from exc


def _is_archive_arg(path: str | None) -> bool:
    return path is not None and os.path.isfile(path)


def _warn_unusable_tmpdir() -> None:
    """Python unpacks into the next usable temp folder when TMPDIR cannot take a file (missing,
    read-only, full): say so, rather than fill a disk the user did not choose."""
    import tempfile

    for var in ("TMPDIR", "TEMP", "TMP"):  # tempfile's own order
        value = os.environ.get(var)
        if value:
            used = tempfile.gettempdir()
            if os.path.abspath(value) != used:
                print(f"warning: {var}={value} cannot take files (missing, read-only, full or "
                      f"not writable); the archive is unpacked into {used} instead",
                      file=sys.stderr)
            return


def _signature_doc(bundle: Bundle) -> dict[str, Any]:
    """For --json: whether a signature was checked (only with --key) and by which key."""
    if bundle.signed_by is None:
        return {"checked": False}
    return bundle.signed_by.to_dict()


def _signature_line(bundle: Bundle) -> str | None:
    info = bundle.signed_by
    return None if info is None else f"signature: ok ({info.algorithm}, key {info.key_id})"


def _load(args: argparse.Namespace, bundle: Bundle) -> Model:
    return load(bundle, prefer=args.prefer, strict=args.strict, verify_hashes=False,
                tuned=not args.no_tuned)


def _selection_text(model: Model) -> str:
    note = " (DEGRADED: fewer providers than asked)" if model.degraded else ""
    return f"candidate: {model.candidate_spec.id} on [{', '.join(model.providers)}]{note}"


# --------------------------------------------------------------------------- commands

def cmd_info(args: argparse.Namespace) -> int:
    """Signature and the decision table for every candidate."""
    bundle = _open(args)
    chosen, decisions, tuning = choose(bundle, prefer=args.prefer, strict=args.strict,
                                       probe_all=True, tuned=not args.no_tuned)
    if chosen is not None:
        chosen[0].close()
    selected = chosen[1].id if chosen else None
    if args.json:
        _emit_json({"ok": chosen is not None, "bundle": bundle.name, "root": str(bundle.root),
                    "target": bundle.target, "signature": bundle.signature.to_dict(),
                    "selected": selected, "candidates": [d.to_dict() for d in decisions],
                    "tuning": tuning.to_dict(), "warnings": bundle.warnings,
                    "signature_check": _signature_doc(bundle), "device": device_info(),
                    "runtime_code": code_guard.STATE.to_dict()})
    else:
        print(f"bundle: {bundle.name}  target: {bundle.target.get('name', '-')}")
        if code_guard.STATE.active:
            print(f"runtime code: this bundle's, checked source only; compiled code cache: "
                  f"{code_guard.STATE.cache_note}")
        if _signature_line(bundle):
            print(_signature_line(bundle))
        print("\n".join(_signature_lines(bundle)))
        print("candidates:")
        print(format_decisions(decisions, indent="  "))
        print(f"tuning: {tuning.text}")
        for w in bundle.warnings:
            print(f"warning: {w}")
        if selected is None:
            print("no candidate loads on this device", file=sys.stderr)
    return EXIT_OK if chosen is not None else EXIT_FAIL


def _summary(spec: TensorSpec, arr: np.ndarray) -> str:
    flat = arr.ravel()
    head = np.array2string(flat[:6], precision=4, separator=", ")
    text = f"{spec.name}: {arr.dtype}{list(arr.shape)} first {head}"
    if spec.scores or (spec.scores is None and looks_like_scores(arr)):
        top = np.argmax(arr, axis=-1).ravel()[:10].tolist()
        text += f" argmax {top}"
    return text


def _npz_path(path: str) -> str:
    """Where ``--output`` goes: np.savez's rule, ``.npz`` added when missing."""
    return path if path.endswith(".npz") else path + ".npz"


def _output_where(args: argparse.Namespace) -> tuple[str, str]:
    return (f"--output {args.output}",
            f"or write elsewhere: --output /a/writable/folder/{Path(_npz_path(args.output)).name}")


def check_inputs_finite(args: argparse.Namespace, feeds: dict[str, np.ndarray]) -> list[str]:
    """Float feeds holding NaN/inf: a FeedError under --strict, else one warning per input
    (printed to stderr here, returned for --json)."""
    found = nonfinite_inputs(feeds)
    if not found:
        return []
    if args.strict:
        raise nonfinite_error(found)
    texts = [f"input {f.name}: {f.text}; outputs computed from it are not meaningful (an int8 "
             f"model turns NaN/inf into ordinary-looking numbers); --strict refuses such input"
             for f in found]
    for text in texts:
        print(f"warning: {text}", file=sys.stderr)
    return texts


def cmd_run(args: argparse.Namespace) -> int:
    """One inference on given (or golden) inputs."""
    if args.output:
        _refuse_inside_bundle(args.output, "--output", args.bundle)
        where, instead = _output_where(args)
        check_writable(_npz_path(args.output), where=where, instead=instead)
    bundle = _open(args)
    if args.input:
        feeds = read_inputs(args.input, bundle.signature.inputs)
        source = "--input"
    else:
        g_in, _, batched = load_golden(bundle)
        feeds = first_sample(g_in, batched, batch=g_in[next(iter(g_in))].shape[0] if batched else 1)
        source = "golden inputs"
    warnings = check_inputs_finite(args, feeds)
    written = None
    with _load(args, bundle) as model:
        outputs = model.run(feeds)
        if args.output:
            written = str(atomic_write(_npz_path(args.output),
                                       lambda fh: np.savez(fh, **outputs),
                                       where=where, instead=instead))
        if args.json:
            doc: dict[str, Any] = {"ok": True, "candidate": model.candidate_spec.id,
                                   "providers": model.providers, "degraded": model.degraded,
                                   "input_source": source, "warnings": warnings,
                                   "signature_check": _signature_doc(bundle), "outputs": {}}
            for spec in model.outputs:
                arr = outputs[spec.name]
                entry: dict[str, Any] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
                if args.values:
                    entry["values"] = _jsonable(arr)
                doc["outputs"][spec.name] = entry
            if written is not None:
                doc["written"] = written
            _emit_json(doc)
        else:
            print(_selection_text(model) + f"  (input: {source})")
            for spec in model.outputs:
                print(_summary(spec, outputs[spec.name]))
            if written is not None:
                print(f"wrote {written}")
    return EXIT_OK


def _refuse_inside_bundle(path: str, flag: str, bundle_arg: str | None) -> None:
    """A file written into the bundle folder makes every later command refuse the bundle
    (its files are checked against bundle.json): say so before doing the work."""
    root = Path(bundle_arg or ".")
    if not root.is_dir() or not (root / "bundle.json").is_file():
        return  # an archive, or not a bundle: nothing of ours to spoil
    target = Path(path).resolve()
    if target.is_relative_to(root.resolve()):
        raise RuntimeBundleError("this would write into the bundle folder, and a bundle with an extra "
                                 "file fails its integrity check on every later command",
                                 where=f"{flag} {path}",
                                 hint=f"write it outside the bundle, e.g. {flag} ../{Path(path).name}")


def _check_report_path(args: argparse.Namespace) -> None:
    """Fail before the work when --report cannot be written (its folder is missing)."""
    path = getattr(args, "report", None)
    if path is None:
        return
    _refuse_inside_bundle(path, "--report", args.bundle)
    parent = Path(path).resolve().parent
    if not parent.is_dir() or Path(path).is_dir():
        raise RuntimeBundleError("cannot write the report here", where=f"--report {path}",
                                 hint="give a file path in an existing folder, e.g. --report "
                                      "report.html")
    check_writable(path, where=f"--report {path}", instead=_report_instead(path))


def _report_instead(path: str) -> str:
    return f"or write it elsewhere: --report /a/writable/folder/{Path(path).name}"


def write_report(path: str, kind: str, doc: dict[str, Any]) -> None:
    """The HTML report of a verify / bench document, written atomically (temp file + rename;
    OutputError naming the file and the cause when the disk is full or read-only)."""
    from .report_html import render_device_report

    data = render_device_report(kind, json.loads(json.dumps(doc, default=_json_default))
                                ).encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data), where=f"--report {path}",
                 instead=_report_instead(path))


def cmd_verify(args: argparse.Namespace) -> int:
    """Golden parity for the selected candidate, or every candidate that loads (--all)."""
    from .verifier import describe_verifier  # verify only: not on the cold-start path of run
    _check_report_path(args)
    bundle = _open(args)
    g_in, g_out, batched = load_golden(bundle)
    results: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []

    def check(model: Model) -> None:
        report = check_parity(model, g_in, g_out, batched)
        spec = model.candidate_spec
        results.append({"candidate": spec.id, "providers": model.providers,
                        "degraded": model.degraded, "passed": report.passed,
                        "outputs": [o.to_dict() for o in report.outputs],
                        "tolerance": {n: t.to_dict() for n, t in spec.tolerance.items()},
                        "_report": report})

    if args.all:
        decs = []
        for cand in order_candidates(bundle, args.prefer):
            backend, dec = try_candidate(bundle, cand, strict=args.strict)
            decs.append(dec)
            if backend is not None:
                with Model(bundle, backend, cand, [dec]) as model:
                    check(model)
        decisions = [d.to_dict() for d in decs]
        if not results:
            raise no_candidate_error(bundle, decs)
    else:
        with _load(args, bundle) as model:
            decisions = model.explain()
            check(model)
    passed = all(r["passed"] for r in results)
    doc = {"ok": True, "passed": passed, "bundle": bundle.name,
           "target": bundle.target.get("name"), "batched": batched,
           "samples": bundle.golden.samples if bundle.golden else None,
           "signature_check": _signature_doc(bundle),
           "verifier": describe_verifier(bundle).to_dict(),
           "candidates": [{k: v for k, v in r.items() if k != "_report"} for r in results],
           "mode": "all" if args.all else "selected",
           "decisions": decisions, "device": device_info()}
    if args.report:
        write_report(args.report, "verify", doc)
        args.report_written = True
    if args.json:
        _emit_json(doc)
    else:
        for line in describe_verifier(bundle).lines():
            print(line)
        if _signature_line(bundle):
            print(_signature_line(bundle))
        for r in results:
            note = " (DEGRADED)" if r["degraded"] else ""
            print(f"candidate {r['candidate']} on [{', '.join(r['providers'])}]{note}: "
                  f"{'PASS' if r['passed'] else 'FAIL'}")
            print(format_parity_rows(r["_report"].outputs, indent="  "))
        skipped = [d for d in decisions if d["status"] != SELECTED] if args.all else []
        for d in skipped:
            print(f"candidate {d['candidate']}: not checked ({d['reason']})")
        print("verify: " + ("PASS" if passed else "FAIL"))
        if args.report:
            print(f"wrote {args.report}")
    return EXIT_OK if passed else EXIT_FAIL


def cmd_bench(args: argparse.Namespace) -> int:
    """Load time, first inference, then latency percentiles and throughput."""
    _check_report_path(args)
    bundle = _open(args, verify=False)
    t0 = time.perf_counter()
    _verify(bundle)
    verify_ms = (time.perf_counter() - t0) * 1e3
    if args.input:
        feeds = read_inputs(args.input, bundle.signature.inputs)
    else:
        g_in, _, batched = load_golden(bundle)
        feeds = first_sample(g_in, batched, batch=args.batch)
    warnings = check_inputs_finite(args, feeds)
    t0 = time.perf_counter()
    model = _load(args, bundle)
    load_ms = (time.perf_counter() - t0) * 1e3
    with model:
        result = benchmark(model, feeds, warmup=args.warmup, runs=args.runs)
        result.load_ms = load_ms
        dev = device_info()
        doc = {"ok": True, "candidate": model.candidate_spec.id, "bundle": bundle.name,
               "target": bundle.target.get("name"), "providers": model.providers,
               "degraded": model.degraded, "backend_version": model.backend_version,
               "verify_ms": verify_ms, "signature_check": _signature_doc(bundle),
               **result.to_dict(), "device": dev, "warnings": warnings}
        if args.report:
            write_report(args.report, "bench", doc)
            args.report_written = True
        if args.json:
            _emit_json(doc)
        else:
            print(f"device: {dev['platform']} ({dev['machine']}, {dev['cpus']} cpus, "
                  f"python {dev['python']})")
            print(_selection_text(model) + f"  backend {model.backend_version or '-'}")
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


def cmd_doctor(args: argparse.Namespace) -> int:
    """Device report; with a bundle, whether this device matches its target and how to fix it."""
    from .doctor import format_report, report

    path = args.bundle
    if path is None and Path(BUNDLE_FILE).is_file():  # run from inside a bundle
        path = "."
    if path is None and args.key is not None:
        raise BundleFormatError("--key needs a bundle to check", where="--key",
                                hint="python -m runtime doctor BUNDLE --key PUB.pem")
    bundle = None
    if path is not None:
        args.bundle = path
        bundle = _open(args, verify=False)
    doc = report(bundle, deep=args.deep)
    if bundle is not None and args.key is not None and isinstance(doc.get("bundle"), dict):
        doc["bundle"]["signature_check"] = _signature_doc(bundle)
    if args.json:
        _emit_json(doc)
    else:
        print(format_report(doc))
    return EXIT_OK if doc["ok"] else EXIT_FAIL


def cmd_tune(args: argparse.Namespace) -> int:
    """Verify and time every candidate that loads; record the fastest that passes beside the
    bundle, for load() on this device."""
    from .tune import NO_WRITE_HINT, format_measurements, tune
    from .tuned import tuned_path

    bundle = _open(args)
    if not args.no_write:  # a read-only folder: say so before minutes of measuring
        check_writable(tuned_path(bundle), instead=NO_WRITE_HINT)
    result = tune(bundle, runs=args.runs, warmup=args.warmup, max_seconds=args.max_seconds,
                  strict=args.strict, write=not args.no_write)
    warning = ("emulated: timings under emulation are not device timings (" + result.emulation
               + "); the choice is recorded with \"emulated\": true") if result.emulated else None
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        _emit_json({"ok": result.chosen is not None, "bundle": bundle.name,
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


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


# --------------------------------------------------------------------------- parser / main

def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("bundle", nargs="?", default=".",
                        help="bundle directory or .tar.gz archive (default: .)")
    common.add_argument("--json", action="store_true", help="one JSON document on stdout")
    common.add_argument("--strict", action="store_true",
                        help="refuse degraded sessions (fewer providers than asked); with "
                             "--prefer, refuse to fall back to another candidate")
    common.add_argument("--prefer", metavar="CANDIDATE_ID", help="try this candidate first")
    common.add_argument("--no-tuned", action="store_true",
                        help="ignore the tuned choice beside the bundle (X.tuned.json)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument("--key", metavar="PUB.pem",
                        help="refuse the bundle unless bundle.sig is a good ed25519 signature by "
                             "this public key (PEM file, PEM text or base64 raw key)")

    parser = argparse.ArgumentParser(prog="python -m runtime",
                                     description="Run and verify an edgepack bundle on this device.")
    parser.add_argument("--version", action="version", version=f"edgepack runtime {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("info", parents=[common], help="signature and which candidate loads, and why")
    p = sub.add_parser("run", parents=[common], help="run inference on .npy/.npz inputs")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]PATH",
                   help="x.npy (single input), NAME=path.npy (repeatable) or feeds.npz; "
                        "default: golden inputs")
    p.add_argument("--output", metavar="PATH.npz", help="write outputs with np.savez")
    p.add_argument("--values", action="store_true", help="with --json: include output values")
    report_help = ("also write a self-contained HTML report to FILE (inline CSS and SVG charts, "
                   "no network); works with or without --json")
    p = sub.add_parser("verify", parents=[common], help="check parity on the golden data",
                       description="Check parity on the golden data: the selected candidate, or "
                                   "every candidate that loads (--all). With --report FILE, "
                                   "also write an HTML report (per output statistics and an "
                                   "error histogram).")
    p.add_argument("--all", action="store_true", help="check every candidate that loads")
    p.add_argument("--report", metavar="FILE", help=report_help)
    p = sub.add_parser("bench", parents=[common], help="latency and throughput",
                       description="Latency and throughput of the selected candidate. With "
                                   "--report FILE, also write an HTML report.")
    p.add_argument("--report", metavar="FILE", help=report_help)
    p.add_argument("--warmup", type=_non_negative, default=10)
    p.add_argument("--runs", type=_positive, default=100)
    p.add_argument("--batch", type=_positive, default=1,
                   help="samples per inference taken from batched golden inputs (default 1)")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]PATH",
                   help="as for run; default: the first golden sample")
    p = sub.add_parser("doctor", help="device report; with a bundle: does it fit, how to fix it")
    p.add_argument("bundle", nargs="?", default=None,
                   help="bundle directory or .tar.gz (default: . when it holds bundle.json)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--deep", action="store_true",
                   help="import every installed backend (torch too) to list its devices")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--key", metavar="PUB.pem",
                   help="check the bundle's signature with this public key first")
    p = sub.add_parser("tune", parents=[common],
                       help="time every candidate that passes parity; record the fastest")
    p.add_argument("--warmup", type=_non_negative, default=5)
    p.add_argument("--runs", type=_positive, default=20,
                   help="minimum timed runs per candidate; more until the median is stable")
    p.add_argument("--max-seconds", type=_seconds, default=3.0,
                   help="time cap per candidate (default 3)")
    p.add_argument("--no-write", action="store_true", help="measure only; write no file")
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "info": cmd_info, "run": cmd_run, "verify": cmd_verify, "bench": cmd_bench,
    "doctor": cmd_doctor, "tune": cmd_tune}


def _error_report(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """With --report, a failed verify / bench still leaves a report that shows the error."""
    path = getattr(args, "report", None)
    if path is None or getattr(args, "report_written", False) or \
            str(doc.get("where") or "").startswith("--report"):
        return
    try:
        write_report(path, args.command, doc)
    except Exception as exc:  # the error above is what matters; say why there is no report
        print(f"warning: no report written: {exc}", file=sys.stderr)



def device_info() -> dict[str, Any]:
    from .bench import device_info as info  # lazy: `run` and `info` never need it
    return info()


def benchmark(*args: Any, **kwargs: Any) -> Any:
    from .bench import benchmark as bench
    return bench(*args, **kwargs)


def stdout_closed() -> int:
    """The reader of our stdout went away (``... | head``): stop quietly, like other CLIs. Point
    stdout at /dev/null so the interpreter's final flush does not complain again."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, as a shell reports a process killed by it


class StdoutFault(Exception):
    """Writing to stdout failed (a full disk it is redirected to): raised by ``_GuardedStdout``
    in place of the OSError, so that main() can tell it from a fault in a file we write."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _GuardedStdout:
    """sys.stdout during a command: the same stream, with an OSError on write/flush (other
    than a closed pipe) raised as StdoutFault."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFault(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFault(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _stdout_fault() -> OSError | None:
    """The error stdout gives on flush (a full disk it is redirected to), or None. On a fault,
    stdout is pointed at /dev/null so the exit does not fail on the same bytes again."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return exc
    return None


def _stdout_error(exc: OSError) -> FileIOError:
    try:  # the file stdout is redirected to, to name it
        target = os.readlink(f"/proc/self/fd/{sys.stdout.fileno()}")
    except (OSError, ValueError):
        target = "standard output"
    return io_error(exc, target, "writing", where="standard output",
                    subject=f"the output to {target}" if target != "standard output" else None,
                    instead="or redirect the output to a file on a disk with room")


def _user_error(args: argparse.Namespace, exc: RuntimeBundleError, *,
                stdout_ok: bool = True) -> int:
    """Print ``error: ...`` (with its hint) on stderr, the JSON document with --json, and a
    report with --report; exit 2 (1 for ``info`` when no candidate loads)."""
    print(f"error: {exc}", file=sys.stderr)
    _error_report(args, {"ok": False, **exc.to_dict()})
    if args.json and stdout_ok:
        try:
            _emit_json({"ok": False, **exc.to_dict()})
            sys.stdout.flush()
        except BrokenPipeError:
            return stdout_closed()
        except (OSError, StdoutFault):  # stdout fails now: the error line above is what is left
            sys.stdout = getattr(sys.stdout, "_stream", sys.stdout)
            _stdout_fault()
    return EXIT_FAIL if isinstance(exc, NoCandidateError) and args.command == "info" \
        else EXIT_USER


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdout = sys.stdout
    sys.stdout = _GuardedStdout(stdout)  # type: ignore[assignment]
    try:
        return _main(args)
    finally:
        sys.stdout = stdout


def _main(args: argparse.Namespace) -> int:
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # output buffered for a full disk fails only now
        return code
    except StdoutFault as exc:
        if args.debug:
            raise
        sys.stdout = getattr(sys.stdout, "_stream", sys.stdout)
        _stdout_fault()
        return _user_error(args, _stdout_error(exc.error), stdout_ok=False)
    except RuntimeBundleError as exc:
        if args.debug:
            raise
        return _user_error(args, exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return stdout_closed()
    except OSError as exc:  # disk full, read-only, permission, I/O error: the machine, not us
        if args.debug:
            raise
        if not exc.filename:
            return _user_error(args, FileIOError(
                f"{cause_of(exc)} (the file system refused; no file name given)",
                hint="rerun with --debug to see where; then free space or fix permissions "
                     "there"))
        writing = exc.errno in (errno.ENOSPC, errno.EROFS, errno.EFBIG,
                                getattr(errno, "EDQUOT", errno.ENOSPC))
        return _user_error(args, io_error(exc, exc.filename, "writing" if writing
                                          else "accessing"))
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc}\n"
              f"  hint: rerun with --debug for the traceback", file=sys.stderr)
        _error_report(args, {"ok": False, "error": "internal", "message": str(exc)})
        if args.json:
            _emit_json({"ok": False, "error": "internal", "message": str(exc)})
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
