"""``python -m runtime pull oci://HOST/REPO:TAG``: a bundle from an OCI registry, with nothing but
the runtime (``runtime.oci``)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import RegistryError
from . import EXIT_OK
from .common import emit_json


def registry_options(args: argparse.Namespace, host: str) -> dict[str, Any]:
    """Credentials (--username with --password-stdin, else the environment or docker's config),
    the CA file and plain HTTP, for ``runtime.oci`` calls."""
    from ..oci.registry import Credentials, credentials_from_env
    credentials = None
    if args.username:
        if not args.password_stdin:
            raise RegistryError("--username needs --password-stdin (a password on the command line shows in ps)",
                                where="--username", hint="echo \"$PASSWORD\" | ... --username NAME --password-stdin")
        credentials = Credentials(args.username, sys.stdin.readline().rstrip("\n"))
    else:
        credentials = credentials_from_env(host)
    return {"credentials": credentials, "ca_file": args.ca_file, "plain_http": args.plain_http}


def cmd_pull(args: argparse.Namespace) -> int:
    from ..oci.pull import pull
    from ..oci.registry import Reference
    ref = Reference.parse(args.reference)
    result = pull(args.reference, args.to, key=args.key, max_rate=args.max_rate, **registry_options(args, ref.host))
    if args.json:
        emit_json({"ok": True, **result.to_dict()})
    else:
        signed = "signature checked, " if result.signature_checked else ""
        print(f"pulled {result.reference} ({result.digest[:19]}) into {result.bundle}: {result.files} files, "
              f"{signed}{result.downloaded_bytes} bytes downloaded, {result.reused_bytes} reused from the cache")
    return EXIT_OK
