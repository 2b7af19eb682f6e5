"""python -m packager: the edgepack command (Ctrl-C while it starts up still exits cleanly)."""
import sys

try:
    from .cli import main

    code = main()
except KeyboardInterrupt:
    print("interrupted: nothing was left half-written (files are moved into place whole or not at all)",
          file=sys.stderr)
    code = 130
raise SystemExit(code)
