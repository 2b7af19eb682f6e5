"""Progress lines for slow build steps: on stderr, so --json output on stdout stays clean."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import IO, Iterator


class Progress:
    """Prints '  step ... done (1.2s)'; in a terminal the line is completed in place."""

    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def note(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        if self.quiet:
            yield
            return
        start = time.perf_counter()
        if self.tty:
            print(f"  {label} ...", end="", file=self.stream, flush=True)
        try:
            yield
        except BaseException:
            self._end(label, "failed", start)
            raise
        self._end(label, "done", start)

    def _end(self, label: str, word: str, start: float) -> None:
        took = f"{word} ({time.perf_counter() - start:.1f}s)"
        if self.tty:
            print(f" {took}", file=self.stream, flush=True)
        else:
            print(f"  {label} ... {took}", file=self.stream, flush=True)
