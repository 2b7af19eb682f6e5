"""``python -m runtime serve [BUNDLE]``: serve the bundle over the Open Inference Protocol v2."""
from __future__ import annotations

import argparse
import json
import sys
import threading

from .common import open_checked


def cmd_serve(args: argparse.Namespace) -> int:
    """Listen at once; verify the bundle in the background; serve until interrupted."""
    from ..serve import Serving, make_server
    bundle = open_checked(args)  # a missing, malformed or tampered bundle (or a bad --key): exit 2 now
    serving = Serving(bundle, key=args.key, prefer=args.prefer, name=args.name, max_batch=args.max_batch,
                      max_delay=args.max_delay_ms / 1000)
    server = make_server(serving, args.host, args.port, max_body=int(args.max_body_mb * 1024 * 1024))
    host, port = server.server_address[0], server.server_address[1]
    url = f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"
    loader = threading.Thread(target=serving.load, name="verify-bundle", daemon=True)
    loader.start()
    if args.json:
        print(json.dumps({"url": url, "model": serving.name, "state": serving.state}), flush=True)
    else:
        print(f"serving {serving.name!r} at {url} (Open Inference Protocol v2); ready once the bundle "
              f"verifies here: {url}/v2/health/ready", flush=True)

    def announce() -> None:
        loader.join()
        line = (f"ready: candidate {serving.verified.get('candidate')} passed golden parity on this device"
                if serving.state == "ready" else f"NOT READY: {serving.reason}")
        print(json.dumps({"state": serving.state, "reason": serving.reason, "verified": serving.verified})
              if args.json else line, flush=True, file=sys.stdout)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
