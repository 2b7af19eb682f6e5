"""``doctor``: what this device is and whether a bundle fits it (``runtime.device``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..bundle import BUNDLE_FILE
from ..errors import BundleFormatError
from . import EXIT_FAIL, EXIT_OK
from .common import emit_json, open_checked, signature_doc


def cmd_doctor(args: argparse.Namespace) -> int:
    """Device report; with a bundle, whether this device matches its target and how to fix it."""
    from ..device.doctor import format_report, report

    path = args.bundle
    if path is None and Path(BUNDLE_FILE).is_file():  # run from inside a bundle
        path = "."
    if path is None and args.key is not None:
        raise BundleFormatError("--key needs a bundle to check", where="--key",
                                hint="python -m runtime doctor BUNDLE --key PUB.pem")
    bundle = None
    if path is not None:
        args.bundle = path
        bundle = open_checked(args, verify=False)
    doc = report(bundle, deep=args.deep)
    if bundle is not None and args.key is not None and isinstance(doc.get("bundle"), dict):
        doc["bundle"]["signature_check"] = signature_doc(bundle)
    if args.json:
        emit_json(doc)
    else:
        print(format_report(doc))
    return EXIT_OK if doc["ok"] else EXIT_FAIL
