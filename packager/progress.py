"""Progress for slow build steps, on stderr so --json output on stdout stays clean.

In a terminal a running step shows a spinner (or a bar, when its size is known) and the elapsed
time, redrawn in place, and its line ends as ``done (1.2s)``; anywhere else (a log file, CI) each
step is one plain line when it ends. ``quiet`` prints nothing; ``verbose`` adds detail lines
(cache hits, what the input trace saw). Colour only in a terminal, never with ``NO_COLOR`` set
(https://no-color.org) or ``TERM=dumb``.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

_SPINNER = "|/-\\"
_COLORS = {"ok": "32", "done": "32", "failed": "31", "cached": "36", "warning": "33", "dim": "2"}


def use_color(stream: IO[str]) -> bool:
    """Whether ``stream`` may get ANSI colours: a terminal, NO_COLOR unset, TERM not dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, kind: str, enabled: bool) -> str:
    code = _COLORS.get(kind)
    return f"\033[{code}m{text}\033[0m" if enabled and code else text


class StepHandle:
    """What a running step can report: how far it got out of ``total``."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n


class Progress:
    """Step lines for a build; see the module docstring for what each mode prints."""

    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False, verbose: bool = False,
                 interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose and not quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.color = use_color(self.stream)
        self.interval = interval
        self._lock = threading.Lock()
        self._running = 0  # steps in progress: only the outermost one draws

    def note(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                if self.tty and self._running:
                    self.stream.write("\r\033[K")  # over the spinner; it redraws below
                print(text, file=self.stream, flush=True)

    def detail(self, text: str) -> None:
        """A line only ``-v`` shows."""
        if self.verbose:
            self.note(paint(f"    {text}", "dim", self.color))

    @contextlib.contextmanager
    def step(self, label: str, total: int | None = None) -> Iterator[StepHandle]:
        handle = StepHandle(total)
        if self.quiet:
            yield handle
            return
        start = time.perf_counter()
        stop = threading.Event()
        drawer = None
        if self.tty and not self._running:
            drawer = threading.Thread(target=self._draw, args=(label, handle, start, stop), daemon=True)
            drawer.start()
        self._running += 1
        try:
            yield handle
        except BaseException:
            self._end(label, "failed", start, stop, drawer)
            raise
        self._end(label, "done", start, stop, drawer)

    def _line(self, label: str, handle: StepHandle, start: float, tick: int) -> str:
        took = f"{time.perf_counter() - start:.1f}s"
        if handle.total:
            width = 20
            filled = min(width, int(width * handle.done / handle.total))
            return f"  {label} [{'#' * filled}{'-' * (width - filled)}] {handle.done}/{handle.total} {took}"
        return f"  {label} {_SPINNER[tick % len(_SPINNER)]} {took}"

    def _draw(self, label: str, handle: StepHandle, start: float, stop: threading.Event) -> None:
        tick = 0
        while not stop.wait(self.interval):
            with self._lock:
                self.stream.write("\r\033[K" + self._line(label, handle, start, tick))
                self.stream.flush()
            tick += 1

    def _end(self, label: str, word: str, start: float, stop: threading.Event,
             drawer: threading.Thread | None) -> None:
        stop.set()
        self._running -= 1
        if drawer is not None:
            drawer.join()
        took = f"{paint(word, word, self.color)} ({time.perf_counter() - start:.1f}s)"
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K")
            print(f"  {label} ... {took}", file=self.stream, flush=True)
