"""The device CLI: ``python -m runtime {info,run,verify,bench,doctor,tune,serve} [BUNDLE]``.

One module per command group: ``run`` (info, run), ``verify`` (verify and the HTML reports),
``measure`` (bench, tune), ``doctor``; ``common`` holds what they share. This package holds the
parser and ``main`` (the exit codes and how errors print), and imports a command's module only
when that command runs: ``python -m runtime run`` imports nothing of verify, bench, tune or
doctor (the bundle's code guard hashes every module imported, so fewer is a faster start).

``verify`` and ``bench`` also write a self-contained HTML report with ``--report FILE``
(runtime.report), with or without ``--json``.

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
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any, Literal

from .. import __version__
from ..errors import FileIOError, NoCandidateError, RuntimeBundleError
from ..fileio import GuardedStdout, StdoutFault, cause_of, io_error, stdout_closed, stdout_error, stdout_fault

EXIT_OK, EXIT_FAIL, EXIT_USER, EXIT_INTERNAL = 0, 1, 2, 3

Command = Literal["info", "run", "verify", "bench", "doctor", "tune", "serve", "pull"]


def _command(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """``function`` of ``runtime.cli.<module>``, imported when the command runs."""
    def run(args: argparse.Namespace) -> int:
        return int(getattr(import_module(f"{__name__}.{module}"), function)(args))
    run.__name__ = function
    return run


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "info": _command("run", "cmd_info"), "run": _command("run", "cmd_run"),
    "verify": _command("verify", "cmd_verify"), "bench": _command("measure", "cmd_bench"),
    "doctor": _command("doctor", "cmd_doctor"), "tune": _command("measure", "cmd_tune"),
    "serve": _command("serve", "cmd_serve"), "pull": _command("pull", "cmd_pull")}


def _emit_json(doc: Any) -> None:
    from .common import emit_json
    emit_json(doc)


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


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


def add_registry_arguments(p: argparse.ArgumentParser) -> None:
    """How to reach an OCI registry (``pull`` here, ``edgepack push`` / ``pull`` too)."""
    p.add_argument("--username", help="registry user (with --password-stdin; default: $EDGEPACK_REGISTRY_USERNAME "
                                      "and _PASSWORD, or ~/.docker/config.json)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--ca-file", metavar="PEM", help="trust this CA certificate for the registry's TLS")
    p.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS (a registry on localhost only)")


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
                             "this public key (PEM file, PEM text or base64 raw key); an ECDSA public key "
                             "checks model.sig (OpenSSF model-signing) instead")

    parser = argparse.ArgumentParser(prog="python -m runtime",
                                     description="Run and verify an edgepack bundle on this device.")
    parser.add_argument("--version", action="version", version=f"edgepack runtime {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("info", parents=[common], help="signature and which candidate loads, and why")
    p = sub.add_parser("run", parents=[common], help="run inference on .npy/.npz inputs or images")
    p.add_argument("--input", action="append", default=[], metavar="[NAME=]PATH",
                   help="x.npy (single input), NAME=path.npy (repeatable), feeds.npz, or an image "
                        "(cat.jpg, NAME=cat.jpg) for a bundle that pre-processes one; "
                        "default: golden inputs")
    p.add_argument("--text", action="append", default=[], metavar="TEXT",
                   help="for a bundle with a tokenizer: a text, tokenized as the bundle declares (repeatable: a batch)")
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
    p.add_argument("--explain", action="store_true",
                   help="for a candidate that fails (or carries the references): where its error starts on "
                        "this device, tensor by tensor, against the build host (bundles built with the target "
                        "option explain_bytes)")
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
    p = sub.add_parser("serve", parents=[common], help="serve the bundle over the Open Inference Protocol v2 (HTTP)",
                       description="Serve the bundle over the Open Inference Protocol v2 REST API (KServe, Triton): "
                                   "/v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, /v2/models/NAME/ready, "
                                   "/v2/models/NAME/infer (JSON tensors and the binary tensor extension; encoded "
                                   "images and top-k labels for a bundle that pre-processes them), /metrics, and "
                                   "updates (Triton's repository load, or --watch). Ready only after the bundle's "
                                   "hashes (and signature, with --key) check out and its candidate passes golden "
                                   "parity (and the end-to-end check from images) on this device.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    p.add_argument("--port", type=_non_negative, default=8000, help="TCP port (default 8000; 0: a free one)")
    p.add_argument("--name", help="the model name clients use (default: the bundle's name)")
    p.add_argument("--max-body-mb", type=_seconds, default=64.0,
                   help="largest request body accepted, in MiB (default 64): larger is refused with 413")
    p.add_argument("--max-batch", type=_positive, default=1,
                   help="dynamic batching: run up to N samples of concurrent requests as one batch (default 1: "
                        "off; needs a symbolic batch axis on every input and output)")
    p.add_argument("--max-delay-ms", type=_seconds, default=2.0,
                   help="dynamic batching: how long a request may wait for others to join its batch (default 2)")
    p.add_argument("--batch-threads", type=_positive, default=2,
                   help="dynamic batching: batches run at once (default 2: one runs while the next gathers)")
    p.add_argument("--grpc-port", type=_non_negative, metavar="N",
                   help="also serve the protocol's gRPC service (inference.GRPCInferenceService) on this port (0: a "
                        "free one); needs grpcio and protobuf (the runtime wheel's serve-grpc extra)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="updates: keeps received bundles (versions/), the one served (current.tar.gz) and the "
                        "update log (updates.jsonl); needed by --update-token-file and --watch")
    p.add_argument("--update-token-file", metavar="FILE",
                   help="updates over HTTP: POST /v2/repository/models/NAME/load with 'Authorization: Bearer "
                        "TOKEN' (the token is this file's content) and the new .tar.gz as parameter file:NAME.tar.gz")
    p.add_argument("--watch", metavar="DIR",
                   help="updates from a folder: a .tar.gz dropped there is verified and swapped in, then moved "
                        "to DIR/accepted or DIR/refused (with the reason)")
    p.add_argument("--probation", type=_non_negative, default=50,
                   help="requests a new version answers before it is kept; a backend failure or non-finite "
                        "output among them rolls back to the previous version (default 50)")
    p = sub.add_parser("pull", help="fetch a bundle from an OCI registry (only what changed), verified",
                       description="Fetch a bundle pushed with `edgepack push` from an OCI registry: the "
                                   "manifest (checked against @sha256:DIGEST when given), bundle.json and its "
                                   "signature (checked with --key before anything else), then only the blobs not "
                                   "already in the cache (~/.cache/edgepack/oci), each against its digest; "
                                   "interrupted downloads resume. The bundle is verified whole and moved into "
                                   "place in one step.")
    p.add_argument("reference", help="oci://HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]")
    p.add_argument("--to", default=".", metavar="DIR", help="folder for the bundle (default: .)")
    p.add_argument("--key", metavar="PUB.pem", help="refuse the bundle unless it is signed by this key (ed25519: "
                   "bundle.sig; ECDSA: model.sig)")
    p.add_argument("--max-rate", type=_seconds, metavar="BYTES_PER_S", help="limit the download rate (slow links)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    add_registry_arguments(p)
    return parser


def _error_report(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """With --report, a failed verify / bench still leaves a report that shows the error."""
    path = getattr(args, "report", None)
    if path is None or getattr(args, "report_written", False) or \
            str(doc.get("where") or "").startswith("--report"):
        return
    try:
        from .verify import write_report
        write_report(path, args.command, doc)
    except Exception as exc:  # the error above is what matters; say why there is no report
        print(f"warning: no report written: {exc}", file=sys.stderr)


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
            stdout_fault()
    return EXIT_FAIL if isinstance(exc, NoCandidateError) and args.command == "info" \
        else EXIT_USER


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdout = sys.stdout
    sys.stdout = GuardedStdout(stdout)
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
        stdout_fault()
        return _user_error(args, stdout_error(exc.error), stdout_ok=False)
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
