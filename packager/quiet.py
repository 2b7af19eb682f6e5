"""Keep third-party chatter (C++ logs on fd 2, Python warnings, prints) out of the build output."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Silence fd 2, sys.stdout/stderr (progress bars), warnings and the named Python loggers (below ERROR) for a block.

    Our own errors are raised as exceptions and printed after the block, so nothing is lost.
    """
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull, warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            os.dup2(devnull.fileno(), 2)
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
