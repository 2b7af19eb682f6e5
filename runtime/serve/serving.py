"""The serving state: the verified bundle now served (``current``), the one before it
(``previous``, kept for a roll-back), and how a request runs on them.

The server listens at once and is ready only after the first bundle verified here
(``loaded.load_verified``); a bundle that fails stays not ready with the reason. Updates
(``updates``) are verified in the caller's thread while ``current`` keeps serving, and swapped in
one assignment; a request reads ``current`` once, so it runs wholly on one version. The first
``probation`` requests of a new version are its health check on live traffic: a backend failure or
a non-finite output rolls back to ``previous``, and the request is answered there.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np

from ..bundle import Bundle
from ..errors import FeedError, RuntimeBundleError
from .loaded import Loaded, NotVerified, load_verified
from .metrics import Metrics
from .protocol import RequestError, classification_strings
from .updates import UpdateLog, UpdateRefused, mark_current, sha256, store_archive

State = Literal["loading", "ready", "failed"]
DEFAULT_PROBATION = 50  # requests a new version answers before it is kept
CLOSE_AFTER = 30.0  # seconds a displaced version stays open for requests still running on it


class Unhealthy(Exception):
    """A new version's answer failed its health check on live traffic."""


def _bundle_name(path: str) -> str:
    """The model name clients use for a bundle given by path: its folder's (or archive's) name."""
    name = Path(path).resolve().name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        name = name.removesuffix(suffix)
    return name


class Serving:
    """The bundle being served and its state: loading, ready, or failed (with why)."""

    def __init__(self, bundle: Bundle | str, *, key: str | None = None, prefer: str | None = None,
                 name: str | None = None, max_batch: int = 1, max_delay: float = 0.002, batch_threads: int = 2,
                 state_dir: Path | None = None, token: str | None = None, probation: int = DEFAULT_PROBATION,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        """``bundle``: opened and checked already (the serve command refuses a bad one before it
        listens), or a path. ``max_batch`` > 1 batches requests dynamically, waiting at most
        ``max_delay`` seconds for a batch to fill, ``batch_threads`` batches at once.
        ``state_dir`` keeps received bundles and the update log; ``token`` enables uploads."""
        self.bundle, self.key, self.prefer = bundle, key, prefer
        self.max_batch, self.max_delay, self.batch_threads = max_batch, max_delay, batch_threads
        self.state_dir, self.token, self.probation = state_dir, token, probation
        self.metrics = Metrics()
        self.log = UpdateLog(state_dir, on_event)
        self.state: State = "loading"
        self.reason: str | None = None
        self.current: Loaded | None = None
        self.previous: Loaded | None = None
        self.name = name or (bundle.name if not isinstance(bundle, str) else _bundle_name(bundle))
        self._probation_left = 0
        self._versions = 0
        self._archives: dict[int, Path] = {}
        self._update_lock = threading.Lock()  # one update at a time
        self._swap_lock = threading.Lock()

    # -- what the endpoints read --------------------------------------------------------------
    @property
    def model(self) -> Any:
        return self.current.model if self.current is not None else None

    @property
    def verified(self) -> dict[str, Any]:
        return self.current.verified if self.current is not None else {}

    @property
    def batching(self) -> dict[str, Any]:
        return self.current.batching if self.current is not None else {"enabled": False, "why": "not loaded"}

    def _load(self, source: Bundle | str | Path) -> Loaded:
        self._versions += 1
        return load_verified(source, key=self.key, prefer=self.prefer, max_batch=self.max_batch,
                             max_delay=self.max_delay, batch_threads=self.batch_threads, metrics=self.metrics,
                             version=self._versions)

    def load(self) -> None:
        """Open, check and verify the first bundle (run in a background thread)."""
        try:
            self.current = self._load(self.bundle)
            self.state = "ready"
            self.log.add("serving", version=self.current.version, candidate=self.verified["candidate"])
        except Exception as exc:  # any failure leaves the server live and not ready, with the reason
            self.state, self.reason = "failed", f"{type(exc).__name__}: {exc}"

    # -- updates ------------------------------------------------------------------------------
    def update(self, archive: bytes, *, origin: str) -> dict[str, Any]:
        """Verify a new bundle (a .tar.gz's bytes) while the current one serves; swap to it when it
        passes. ``UpdateRefused`` (the current version goes on serving) when it does not."""
        if self.state_dir is None:
            raise UpdateRefused(403, "updates are off: start serve with --state-dir (and --update-token-file "
                                     "or --watch)")
        with self._update_lock:
            if self.state != "ready" or self.current is None:
                raise UpdateRefused(409, f"the server is {self.state}: an update replaces a bundle that serves")
            version = self._versions + 1
            path = store_archive(self.state_dir, version, archive)
            self.log.add("received", version=version, origin=origin, bytes=len(archive), sha256=sha256(archive))
            try:
                new = self._load(path)
            except (RuntimeBundleError, NotVerified) as exc:
                self._refuse(version, 400 if isinstance(exc, RuntimeBundleError) else 422, str(exc))
            why = self._incompatible(new)
            if why is not None:
                new.close()
                self._refuse(version, 409, why)
            self._archives[version] = path
            with self._swap_lock:
                displaced, self.previous, self.current = self.previous, self.current, new
                self._probation_left = self.probation
            mark_current(self.state_dir, path)
            self._close_later(displaced)
            self.log.add("swapped", version=version, candidate=new.verified["candidate"],
                         previous=self.previous.version if self.previous else None, probation=self.probation)
            return {"version": version, "candidate": new.verified["candidate"], "verified": new.verified}

    def _refuse(self, version: int, status: int, reason: str) -> NoReturn:
        self.log.add("refused", version=version, reason=reason)
        raise UpdateRefused(status, f"update refused, still serving version "
                                    f"{self.current.version if self.current else '-'}: {reason}")

    def _incompatible(self, new: Loaded) -> str | None:
        """Why clients of the current version could not use ``new`` (None: they can)."""
        assert self.current is not None
        old = self.current.bundle
        if new.bundle.name != old.name:
            return f"the bundle is model {new.bundle.name!r}, this server serves {old.name!r}"
        if new.bundle.signature != old.signature:
            return ("its signature differs from the one served (clients would break); serve it as a "
                    "new model instead")
        return None

    def _close_later(self, loaded: Loaded | None) -> None:
        if loaded is not None:
            timer = threading.Timer(CLOSE_AFTER, loaded.close)
            timer.daemon = True
            timer.start()

    def _roll_back(self, failed: Loaded, reason: str) -> None:
        with self._swap_lock:
            if self.current is not failed or self.previous is None:
                return  # rolled back already by another request
            self.current, self.previous = self.previous, None
            self._probation_left = 0
        if self.state_dir is not None:
            mark_current(self.state_dir, self._archives.get(self.current.version, None))
        self._close_later(failed)
        self.log.add("rolled_back", version=failed.version, to=self.current.version, reason=reason)

    # -- one request --------------------------------------------------------------------------
    def infer(self, feeds: dict[str, np.ndarray], raw: dict[str, list[bytes]] | None = None,
              classification: dict[str, int] | None = None) -> tuple[Loaded, dict[str, np.ndarray]]:
        """A request's outputs and the version that answered it."""
        loaded = self.current
        assert loaded is not None
        on_probation = self._probation_left > 0 and loaded is self.current and self.previous is not None
        try:
            results = self._run(loaded, feeds, raw or {}, classification or {}, on_probation)
        except (FeedError, RequestError):
            raise  # the request's fault, not the version's
        except Exception as exc:
            if not on_probation:
                raise
            self._roll_back(loaded, f"{type(exc).__name__}: {exc}")
            loaded = self.current
            assert loaded is not None
            results = self._run(loaded, feeds, raw or {}, classification or {}, False)
        if on_probation and loaded is self.current:
            with self._swap_lock:
                self._probation_left -= 1
                kept = self._probation_left == 0
            if kept:
                self.log.add("kept", version=loaded.version, requests=self.probation)
        return loaded, results

    def _run(self, loaded: Loaded, feeds: dict[str, np.ndarray], raw: dict[str, list[bytes]],
             classification: dict[str, int], check: bool) -> dict[str, np.ndarray]:
        if raw:
            feeds = {**feeds, **loaded.processor.feeds(raw)}
        results = dict(loaded.infer(feeds, self.metrics))
        if check:
            bad = [n for n, v in results.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
            if bad:
                raise Unhealthy(f"version {loaded.version} answered non-finite values in {', '.join(bad)}")
        for name, count in classification.items():  # Triton's classification extension
            results[name] = classification_strings(loaded.processor.top_k(name, results[name], count))
        return results

    # -- what /metrics and the metadata say ------------------------------------------------------
    def info(self) -> dict[str, str]:
        if self.current is None:
            return {"state": self.state, "candidate": "", "providers": ""}
        return {"state": self.state, "candidate": self.current.verified["candidate"],
                "providers": ",".join(self.current.model.providers), "version": str(self.current.version),
                "batching": str(self.current.batching.get("enabled")).lower()}

    def index(self) -> list[dict[str, Any]]:
        """Triton's repository index: the model, its version and state."""
        state = {"ready": "READY", "failed": "UNAVAILABLE", "loading": "LOADING"}[self.state]
        return [{"name": self.name, "version": str(self.current.version) if self.current else "", "state": state,
                 "reason": self.reason or ""}]
