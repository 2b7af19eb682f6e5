"""What the ``python -m runtime`` commands share: opening the bundle named on the command line
(archive, signature, hashes), loading its Model, reading ``--input`` arrays, and JSON output."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Bundle, open_bundle
from ..errors import FeedError, RuntimeBundleError
from ..fileio import io_error, is_fault
from ..finite import nonfinite_error, nonfinite_inputs
from ..golden import load_npz
from ..model import Model, load
from ..signature import TensorSpec


def emit_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, default=json_default)
    sys.stdout.write("\n")


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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


def _is_image(path: str) -> bool:
    from ..prepost import IMAGE_SUFFIXES
    return path.lower().endswith(IMAGE_SUFFIXES)


def read_inputs(args: Sequence[str], inputs: Sequence[TensorSpec], bundle: Bundle | None = None,
                texts: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """--input values: x.npy (single-input model), NAME=path.npy (repeatable), or feeds.npz; and,
    for an input the bundle pre-processes, image files (cat.jpg or NAME=cat.jpg; several make a
    batch), decoded and pre-processed as the bundle declares; --text values tokenized for a bundle
    with a tokenizer (several make a batch)."""
    feeds: dict[str, np.ndarray] = {}
    images: dict[str, list[bytes]] = {}
    if texts:
        text = bundle.processing.text if bundle is not None and bundle.processing else None
        if text is None:
            raise FeedError("this bundle has no tokenizer, so it takes no --text", where="--text",
                            hint="give its inputs as tensors with --input")
        images[text.name] = [t.encode("utf-8") for t in texts]

    def put(name: str, arr: np.ndarray, src: str) -> None:
        if name in feeds:
            raise FeedError("given twice", where=name, hint=f"drop one of the --input {src}")
        feeds[name] = arr

    def image(name: str | None, path: str) -> None:
        pre = bundle.processing.inputs if bundle is not None and bundle.processing else {}
        if name is None and len(pre) != 1:
            raise FeedError("this bundle pre-processes no input from images" if not pre else
                            f"several inputs take images ({', '.join(pre)})", where=path,
                            hint="give tensors as .npy/.npz" if not pre else "use NAME=path for each")
        name = name if name is not None else next(iter(pre))
        try:
            with open(path, "rb") as fh:
                images.setdefault(name, []).append(fh.read())
        except OSError as exc:
            raise io_error(exc, path, "reading") from exc

    for arg in args:
        if os.path.isfile(arg) and arg.lower().endswith(".npz"):
            for name, arr in load_npz(arg, where=arg).items():
                put(name, arr, arg)
        elif os.path.isfile(arg) and _is_image(arg):
            image(None, arg)
        elif os.path.isfile(arg):
            if len(inputs) != 1:
                raise FeedError(f"the model has {len(inputs)} inputs; a bare .npy is ambiguous",
                                where=arg, hint="use NAME=path.npy for each input, or one .npz")
            put(inputs[0].name, _load_array(arg), arg)
        elif "=" in arg:
            name, path = arg.split("=", 1)
            if not os.path.isfile(path):
                raise FeedError("no such file", where=path, hint=f"check --input {arg}")
            if _is_image(path):
                image(name, path)
            else:
                put(name, _load_array(path), arg)
        else:
            raise FeedError("no such file", where=arg,
                            hint="use --input x.npy, --input NAME=path.npy, --input feeds.npz"
                                 + (" or --input image.png" if bundle is not None and bundle.processing
                                    and bundle.processing.inputs else ""))
    if images:
        assert bundle is not None
        from ..prepost import Processor
        fixed = {s.name for s in inputs if s.shape and s.shape[0] == 1}
        for name, arr in Processor(bundle).feeds(images).items():
            if name in fixed and arr.shape[0] > 1:
                raise FeedError(f"input {name!r} takes one sample at a time (its batch is fixed to 1)",
                                where=name, hint="give one image or --text per run")
            put(name, arr, "--text" if name not in images else "image")
    return feeds


def open_checked(args: argparse.Namespace, *, verify: bool = True) -> Bundle:
    """Open the bundle; with --key, its signature is checked first (before parsing)."""
    if _is_archive_arg(args.bundle):
        _warn_unusable_tmpdir()
    try:
        bundle = open_bundle(args.bundle, public_key=args.key)  # archive faults: FileIOError
    except OSError as exc:
        raise io_error(exc, exc.filename or args.bundle, "reading") from exc
    if verify:
        verify_files(bundle)
    return bundle


def verify_files(bundle: Bundle) -> None:
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


def signature_doc(bundle: Bundle) -> dict[str, Any]:
    """For --json: whether a signature was checked (only with --key) and by which key."""
    if bundle.signed_by is None:
        return {"checked": False}
    return bundle.signed_by.to_dict()


def signature_line(bundle: Bundle) -> str | None:
    info = bundle.signed_by
    return None if info is None else f"signature: ok ({info.algorithm}, key {info.key_id})"


def load_model(args: argparse.Namespace, bundle: Bundle) -> Model:
    return load(bundle, prefer=args.prefer, strict=args.strict, verify_hashes=False,
                tuned=not args.no_tuned)


def selection_text(model: Model) -> str:
    note = " (DEGRADED: fewer providers than asked)" if model.degraded else ""
    return f"candidate: {model.candidate_spec.id} on [{', '.join(model.providers)}]{note}"


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


def refuse_inside_bundle(path: str, flag: str, bundle_arg: str | None) -> None:
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


def device_info() -> dict[str, Any]:
    from ..tuning.bench import device_info as info  # lazy: `run` never needs it
    return info()
