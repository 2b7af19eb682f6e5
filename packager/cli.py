"""The `edgepack` command. Heavy modules are imported per command, so `--help` stays instant."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .errors import BuildError, EdgepackError

EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR = 0, 1, 2


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def cmd_targets(args: argparse.Namespace) -> int:
    from .config.targets import Target, available_targets, load_target, no_targets_error
    from .report.text import format_targets
    found = available_targets()
    if not found:  # an empty table would pass for success; a build could use none of them
        raise no_targets_error()
    rows: list[tuple[str, Target | None, str]] = []
    docs: list[dict[str, Any]] = []
    status = EXIT_OK
    for name, path in sorted(found.items()):
        try:
            t = load_target(str(path))
            rows.append((name, t, str(path)))
            docs.append(dict(t.to_dict(), file=str(path), requirements=t.requirements_for(set(t.backend_requirements)),
                             candidates=[{"id": c.id, "format": c.format, "precision": c.precision,
                                          "providers": list(c.providers)} for c in t.candidates]))
        except EdgepackError as exc:
            status = EXIT_FAILED
            rows.append((name, None, str(path)))
            docs.append({"name": name, "file": str(path), "error": exc.to_dict()})
            if args.check and not args.json:
                print(f"error: {exc}", file=sys.stderr)
    if args.json:
        _emit_json({"targets": docs})
    else:
        print(format_targets(rows))
    return status if args.check else EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .config.manifest import load_manifest
    from .config.targets import load_target
    from .init import check_placeholders
    manifest = load_manifest(args.manifest)
    targets = [load_target(t, manifest.base_dir) for t in (args.target or manifest.targets)]
    check_placeholders(manifest)  # a manifest from 'edgepack init' whose data was never filled in
    if args.json:
        _emit_json({"manifest": args.manifest, "name": manifest.name, "valid": True,
                    "targets": [t.name for t in targets]})
    else:
        print(f"{args.manifest}: valid ({manifest.name}; targets: {', '.join(t.name for t in targets)})")
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from .cache import BuildCache
    from .pipeline import build
    from .progress import Progress
    from .report.text import format_build
    progress = Progress(quiet=args.quiet or args.json, verbose=args.verbose)
    remote = None
    if args.cache_from or args.cache_to:
        from .remote_cache import RemoteCache
        if args.cache_from and args.cache_to and args.cache_from != args.cache_to:
            raise BuildError("--cache-from and --cache-to name different registries", where="--cache-to",
                             hint="use one repository for both (or only one of them)")
        remote = RemoteCache(args.cache_to or args.cache_from, read=True, write=bool(args.cache_to))
    cache = BuildCache(Path(args.cache_dir) if args.cache_dir else None, enabled=not args.no_cache,
                       max_bytes=int(args.cache_max_mb * 1024 * 1024), remote=remote)
    result = build(args.manifest, args.out, targets=args.target or None,
                   allow_parity_failure=args.allow_parity_failure, progress=progress, sign=args.sign,
                   cache=cache, jobs=args.jobs or None, reload_inputs=args.reload_inputs)
    if args.json:
        _emit_json(result.to_dict())
    else:
        from .progress import use_color
        print(format_build(result, color=use_color(sys.stdout)))
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_init(args: argparse.Namespace) -> int:
    import shlex

    import yaml

    from .errors import SourceError
    from .init import format_summary, init_manifest
    kwargs: dict[str, Any] = {}
    for item in args.kwarg or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise SourceError(f"--kwarg {item!r} is not KEY=VALUE", where="--kwarg",
                              hint="e.g. --kwarg num_classes=10 --kwarg weights=w.pt (values read as YAML)")
        try:
            kwargs[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            kwargs[key] = value
    command = "edgepack " + " ".join(shlex.quote(a) for a in args.argv)
    result = init_manifest(args.model, output=args.output, force=args.force, name=args.name,
                           example_inputs=args.example_input or [], batch_dim=args.batch_dim,
                           fixed_batch=args.fixed_batch, targets=args.target or [], kwargs=kwargs,
                           command=command, dynamic=args.dynamic or [], static_axes=args.static_axes)
    if args.json:
        _emit_json(result.to_dict())
    elif result.path == "-":
        sys.stdout.write(result.text)
        print(format_summary(result), file=sys.stderr)
    else:
        print(format_summary(result))
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from .bundle.signing import generate_keypair
    private, public = generate_keypair(Path(args.folder), model_signing=args.model_signing)
    if args.json:
        _emit_json({"private_key": str(private), "public_key": str(public)})
    else:
        print(f"private key: {private}  (keep it secret: edgepack build --sign {private})")
        print(f"public key:  {public}  (give it to devices: python -m runtime verify --key {public.name})")
    return EXIT_OK


def cmd_runtime_wheel(args: argparse.Namespace) -> int:
    from .bundle.runtime_wheel import build_runtime_wheel
    wheel = build_runtime_wheel(Path(args.out))
    if args.json:
        _emit_json({"wheel": str(wheel)})
    else:
        print(f"{wheel}\n  on a device: python -m pip install {wheel.name}  (add [onnxruntime] or "
              "[tflite], or install the bundle's requirements.txt), then: edgepack-runtime verify BUNDLE")
    return EXIT_OK


def cmd_converters(args: argparse.Namespace) -> int:
    from .convert.converter_env import CONVERTERS, announced, describe, ensure, format_converter
    from .errors import ConfigError
    names = args.names or sorted(CONVERTERS)
    unknown = [n for n in names if n not in CONVERTERS]
    if unknown:
        raise ConfigError(f"unknown converter {', '.join(unknown)}", where="NAME",
                          hint=f"known converters: {', '.join(sorted(CONVERTERS))}")
    if args.action == "install":
        from .progress import Progress
        progress = Progress(quiet=args.json)
        for name in names:
            ensure(CONVERTERS[name], on_create=announced(progress), on_wait=progress.note)
    docs = [describe(CONVERTERS[name]) for name in names]
    if args.json:
        _emit_json({"converters": docs})
    else:
        print("\n".join(format_converter(doc) for doc in docs))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .config.schema import schema_document
    text = json.dumps(schema_document(args.kind), indent=2) + "\n"
    if args.output:
        from runtime.fileio import atomic_write
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        atomic_write(out, lambda fh: fh.write(data))  # never half a schema file
        if not args.json:
            print(f"wrote the {args.kind} schema to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgepack",
        description="Package trained models (PyTorch, TensorFlow/Keras, ONNX) into verified "
                    "per-device bundles (ONNX, TFLite, TorchScript), checked against the original "
                    "model on real inputs.")
    parser.add_argument("--version", action="version", version=f"edgepack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
        p.set_defaults(func=func)
        return p

    p = add("targets", cmd_targets, "list the device targets that can be built for")
    p.add_argument("--check", action="store_true", help="exit 1 if any target file is invalid")

    p = add("validate", cmd_validate, "check a manifest and its targets without building")
    p.add_argument("manifest", help="manifest YAML file")
    p.add_argument("--target", action="append", help="check only this target (name or YAML path); repeatable")

    from .debug_command import cmd_debug
    p = add("debug", cmd_debug, "where an int8 candidate's error comes from: its nodes against the float model's")
    p.add_argument("manifest", help="manifest YAML file")
    p.add_argument("--target", help="the target (name or YAML path; default: the manifest's first with the candidate)")
    p.add_argument("--candidate", required=True, help="the candidate's id (an onnx or tflite int8 one)")
    p.add_argument("--cache-dir", help="build cache folder (default $EDGEPACK_CACHE_DIR/build)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    p = add("build", cmd_build, "build one verified bundle per target of a manifest")
    p.add_argument("manifest", help="manifest YAML file")
    p.add_argument("--out", default="dist", help="output folder (default: dist)")
    p.add_argument("--target", action="append",
                   help="build only this target (name or YAML path); repeatable")
    p.add_argument("--allow-parity-failure", action="store_true",
                   help="keep candidates that fail parity in the bundle (marked as failed) instead of "
                        "failing the build")
    p.add_argument("--sign", metavar="KEY", action="append", help="sign each bundle with this private key (PEM, "
                   "see 'edgepack keygen'): ed25519 writes bundle.sig, ECDSA P-256/384/521 writes model.sig "
                   "(OpenSSF model-signing); repeatable, one key of each kind")
    p.add_argument("-j", "--jobs", type=int, default=0,
                   help="worker processes for steps different targets need: ONNX precision passes and, "
                        "when N is given (or for a model of 32 MB+ on 4+ cores), TFLite/TorchScript "
                        "conversions (default 0: as many as cores and memory allow; 1: none)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the build cache")
    p.add_argument("--cache-dir", help="build cache folder (default: $EDGEPACK_CACHE_DIR/build or "
                                       "~/.cache/edgepack/build)")
    p.add_argument("--cache-max-mb", type=float, default=2048.0,
                   help="evict least recently used cache entries above this size (default: 2048)")
    p.add_argument("--cache-from", metavar="oci://HOST/REPO",
                   help="also look for cached steps in this registry repository (a cache other machines filled)")
    p.add_argument("--cache-to", metavar="oci://HOST/REPO",
                   help="also store every step in this registry repository (and read from it); credentials from "
                        "$EDGEPACK_REGISTRY_USERNAME/_PASSWORD or ~/.docker/config.json, a private CA from "
                        "$EDGEPACK_REGISTRY_CA_FILE")
    p.add_argument("--reload-inputs", action="store_true",
                   help="call the model and data entry points even if nothing they read changed "
                        "(after changing an input edgepack cannot trace: an environment variable, "
                        "a file read by native code)")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    noise.add_argument("-v", "--verbose", action="store_true",
                       help="also show cache hits and the inputs traced for the next rebuild")

    p = add("init", cmd_init, "write a starter manifest for a model, its signature inferred from the model")
    p.add_argument("model", metavar="MODEL",
                   help="an .onnx file, a SavedModel folder or .keras file, or an entry point "
                        "path/to/file.py:function (or package.module:function) returning a torch or Keras model")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to write the manifest (default: <name>.yaml next to the model; '-': stdout)")
    p.add_argument("--force", action="store_true", help="overwrite an existing manifest file")
    p.add_argument("--name", help="the model's name in the manifest (names the bundles; default: from the model)")
    p.add_argument("-x", "--example-input", action="append", metavar="SPEC",
                   help="torch only, one per forward() argument in order: dims like 1x3x224x224 (random "
                        "float32 values; 1x16:int64 for another dtype; image=1x3x224x224 names the input), or "
                        "x.npy; or once: inputs.npz (arrays keyed by input name) or data.py:function "
                        "returning an array, a tuple of arrays or a dict name -> array. The model is run "
                        "on it to learn its outputs")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch-dim", metavar="SYMBOL",
                       help="make axis 0 of every input the symbolic dim SYMBOL (default: 'batch' where the "
                            "model's axis 0 is dynamic; for torch, where the model also runs at twice the "
                            "example's batch)")
    batch.add_argument("--fixed-batch", action="store_true",
                       help="keep axis 0 fixed (a dynamic one is written as 1)")
    axes = p.add_mutually_exclusive_group()
    axes.add_argument("--dynamic", action="append", metavar="[INPUT:]AXIS=SYMBOL",
                      help="torch only: make AXIS of INPUT (of every input that has it, without INPUT) the "
                           "symbolic dim SYMBOL, e.g. input_ids:1=seq; repeatable. Without it, axis 1 of "
                           "rank-2/3 inputs (token ids, masks, waveforms) is made 'seq' where the model runs "
                           "at another length")
    axes.add_argument("--static-axes", action="store_true",
                      help="torch only: keep every axis but the batch fixed (no sequence-axis probe)")
    p.add_argument("--target", action="append",
                   help="target to enable (name or YAML path); repeatable (default: x86-cpu). The other "
                        "known targets are listed commented out")
    p.add_argument("--kwarg", action="append", metavar="KEY=VALUE",
                   help="keyword argument for the entry point (the value is read as YAML); repeatable")

    p = add("keygen", cmd_keygen, "make an ed25519 key pair for signing bundles (or ECDSA P-256, --model-signing)")
    p.add_argument("folder", help="folder for edgepack-signing.key (private) and edgepack-signing.pub")
    p.add_argument("--model-signing", action="store_true", help="an ECDSA P-256 pair instead (model-signing.key/"
                   ".pub): build --sign with it writes model.sig, checked by OpenSSF model_signing and the runtime")

    p = add("schema", cmd_schema, "print the JSON Schema of manifests or targets (for editors' YAML "
                                  "plugins; generated from the loader's own field declarations)")
    p.add_argument("kind", choices=["manifest", "target"], help="which schema")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout")

    p = add("runtime-wheel", cmd_runtime_wheel,
            "write a wheel of the on-device runtime alone (numpy its only requirement), for devices "
            "that install with pip instead of using the runtime inside each bundle")
    p.add_argument("--out", default="dist", help="output folder (default: dist)")

    p = add("converters", cmd_converters,
            "list, or create ahead of a build, the isolated environments of converters edgepack runs as "
            "subprocesses (onnx2tf, for ONNX -> TFLite: Python >= 3.12, 2.7 GB, once)")
    p.add_argument("action", choices=["list", "install"], help="show their state, or create the missing ones")
    p.add_argument("names", nargs="*", metavar="NAME", help="which converters (default: all: onnx2tf)")

    from .oci_command import add_commands
    add_commands(add)

    from .inspect_command import add_command
    add_command(add)
    return parser


INTERRUPTED = "interrupted: nothing was left half-written (files are moved into place whole or not at all)"

def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if argv is None:  # the process's own command (edgepack, python -m packager), its work done: a
        # Ctrl-C now would only reach the interpreter's exit, where torch's atexit callbacks print a
        # KeyboardInterrupt traceback under the summary; the exit code stands
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except BrokenPipeError:
        from runtime.fileio import stdout_closed
        return stdout_closed()
    except Exception as caught:
        from runtime.errors import HintedError

        from .errors import from_os_error
        exc = from_os_error(caught) or caught  # a full or failing disk is not edgepack's bug
        if not isinstance(exc, HintedError):
            if args.debug:
                raise
            print(f"internal error: {type(exc).__name__}: {exc}\n  hint: rerun with --debug for the "
                  "traceback and report it", file=sys.stderr)
            return EXIT_FAILED
        if args.debug:
            traceback.print_exc()
        if args.json:
            _emit_json(exc.to_dict())
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
