"""``python -m runtime serve [BUNDLE]``: serve the bundle over the Open Inference Protocol v2."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import RuntimeBundleError
from .common import open_checked, refuse_inside_bundle


def _update_options(args: argparse.Namespace) -> tuple[Path | None, str | None, Path | None]:
    """(state folder, upload token, watched folder), checked before the server listens."""
    state = Path(args.state_dir) if args.state_dir else None
    watch = Path(args.watch) if args.watch else None
    token = None
    if (args.update_token_file or watch) and state is None:
        raise RuntimeBundleError("updates need a folder to keep received bundles and their log",
                                 where="--update-token-file" if args.update_token_file else "--watch",
                                 hint="add --state-dir DIR (created if missing)")
    if args.update_token_file:
        try:
            token = Path(args.update_token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise RuntimeBundleError(f"cannot read the token: {exc}",
                                     where=f"--update-token-file {args.update_token_file}",
                                     hint="write a long random token into that file (e.g. python -c 'import "
                                          "secrets; print(secrets.token_hex(32))' > token)") from None
        if len(token) < 16:
            raise RuntimeBundleError(f"the token is {len(token)} characters; at least 16 are needed",
                                     where=f"--update-token-file {args.update_token_file}",
                                     hint="python -c 'import secrets; print(secrets.token_hex(32))' > token")
    for flag, folder in (("--state-dir", state), ("--watch", watch)):
        if folder is not None:
            refuse_inside_bundle(str(folder), flag, args.bundle)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RuntimeBundleError(f"cannot create {folder}: {exc.strerror or exc}", where=f"{flag} {folder}",
                                         hint="give a folder this user can write") from None
    return state, token, watch


def _grpc(args: argparse.Namespace, serving: Any, max_body: int) -> tuple[Any, str]:
    """The gRPC server (started) and its address; a clear error when grpcio is missing."""
    try:
        from ..serve.grpc_server import GRPC_HINT, make_grpc_server
    except ImportError as exc:
        raise RuntimeBundleError(f"--grpc-port needs grpcio and protobuf ({exc})", where="--grpc-port",
                                 hint="pip install grpcio protobuf (the runtime wheel's serve-grpc extra)") from None
    try:
        server, port = make_grpc_server(serving, args.host, args.grpc_port, max_message=max_body)
    except (OSError, RuntimeError) as exc:
        raise RuntimeBundleError(f"cannot serve gRPC: {exc}", where=f"--grpc-port {args.grpc_port}",
                                 hint=f"choose a free port (0 picks one); {GRPC_HINT}") from None
    return server, f"{args.host}:{port}"


def _event_line(event: dict[str, Any]) -> str:
    """An update event as the text form prints it."""
    rest = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("time", "event"))
    return f"update: {event['event']} ({rest})"


def cmd_serve(args: argparse.Namespace) -> int:
    """Listen at once; verify the bundle in the background; serve until interrupted."""
    from ..serve import Serving, make_server
    from ..serve.updates import Watcher
    state, token, watch = _update_options(args)
    bundle = open_checked(args)  # a missing, malformed or tampered bundle (or a bad --key): exit 2 now

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] != "serving":  # the first version is announced by the ready line
            print(json.dumps(event) if args.json else _event_line(event), flush=True)

    serving = Serving(bundle, key=args.key, prefer=args.prefer, name=args.name, max_batch=args.max_batch,
                      max_delay=args.max_delay_ms / 1000, batch_threads=args.batch_threads, state_dir=state,
                      token=token, probation=args.probation,
                      on_event=on_event)
    max_body = int(args.max_body_mb * 1024 * 1024)
    grpc_server, grpc_address = _grpc(args, serving, max_body) if args.grpc_port is not None else (None, None)
    server = make_server(serving, args.host, args.port, max_body=max_body)
    host, port = server.server_address[0], server.server_address[1]
    url = f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"
    loader = threading.Thread(target=serving.load, name="verify-bundle", daemon=True)
    loader.start()
    if args.json:
        print(json.dumps({"url": url, "grpc": grpc_address, "model": serving.name, "state": serving.state}),
              flush=True)
    else:
        print(f"serving {serving.name!r} at {url}" + (f" and gRPC {grpc_address}" if grpc_address else "")
              + f" (Open Inference Protocol v2); ready once the bundle verifies here: {url}/v2/health/ready",
              flush=True)

    def announce() -> None:
        loader.join()
        e2e = " and the end-to-end check from images" if serving.verified.get("end_to_end") == "passed" else ""
        line = (f"ready: candidate {serving.verified.get('candidate')} passed golden parity{e2e} on this device"
                if serving.state == "ready" else f"NOT READY: {serving.reason}")
        print(json.dumps({"state": serving.state, "reason": serving.reason, "verified": serving.verified})
              if args.json else line, flush=True, file=sys.stdout)

    threading.Thread(target=announce, daemon=True).start()
    watcher = Watcher(watch, serving) if watch is not None else None
    if watcher is not None:
        watcher.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if watcher is not None:
            watcher.stop()
        if grpc_server is not None:
            grpc_server.stop(grace=1.0)
        server.server_close()
    return 0
