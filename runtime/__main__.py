"""``python -m runtime ...`` (and the wheel's ``edgepack-runtime`` command): see runtime.cli."""
from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
