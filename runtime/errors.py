"""The runtime's one exception tree: every error says what is wrong, where, and how to fix it.

    HintedError                  message, where, hint, code (shared with the packager's tree)
    └── RuntimeBundleError       runtime-error: base of everything the runtime raises on purpose
        ├── BundleFormatError    bundle-format: bundle.json missing, unreadable or not understood
        ├── IntegrityError       bundle-integrity: a bundle file missing, modified or unlisted
        ├── ArchiveError         unsafe-archive: a .tar.gz that is unsafe or not a bundle
        ├── SignatureError       bad-signature: --key given and bundle.sig (model.sig) does not check out
        ├── FeedError            bad-feed: inputs that do not match the signature (or, when
        │                        asked, hold NaN/inf)
        ├── NoCandidateError     no-candidate: nothing loads on this device
        ├── BackendError         backend-failed: a backend failed to open or run an artifact
        ├── UnknownCandidateError  unknown-candidate: prefer= names no candidate
        ├── RegistryError        registry: an OCI registry refused, failed or could not be
        │                        reached (pull / push), or served content that does not check out
        └── FileIOError          io-error: the file system refused a read (permission denied,
            │                    I/O error) or the temp copy of an archive (disk full)
            └── OutputError      output-failed: a file the runtime writes (run --output,
                                 --report, X.tuned.json) could not be written; nothing partial
                                 is left behind

    ImportError
    └── TamperedCodeError        bundle-integrity / bundle-format (runtime.code_guard): a module
                                 of a bundle's runtime is unlisted or modified, or bundle.json
                                 cannot be read before any code of ours is checked; raised by
                                 the import system, so it cannot derive from HintedError, but it
                                 prints and serialises the same way

    Exception
    └── StdoutFault              (runtime.fileio, internal) writing standard output failed;
                                 the CLI turns it into a FileIOError for "standard output"

NoCandidateError carries the selection table's rows (``decisions``). The packager's own tree
(``packager.errors``) also derives from HintedError.

The CLI (runtime.cli) exits 2 on every RuntimeBundleError (1 for NoCandidateError from
``info``), and turns an OSError that still reaches it into a FileIOError, so a full disk or a
read-only folder is never an "internal error".
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class HintedError(Exception):
    """A user-facing error: what is wrong (``message``), where, and how to fix it (``hint``).

    Both exception trees (this runtime's and the packager's) derive from it, so the CLIs print
    and serialise every error the same way; ``code`` is a stable id for scripts and tests.
    """

    code = "error"

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, str | None]:
        return {"error": self.code, "message": self.message, "where": self.where, "hint": self.hint}

    def __reduce__(self) -> tuple[Any, ...]:
        # keep where/hint when the error crosses a process boundary (build workers)
        return (_rebuild, (type(self), self.message, self.where, self.hint))


def _rebuild(cls: type[HintedError], message: str, where: str | None, hint: str | None) -> HintedError:
    return cls(message, where=where, hint=hint)


class RuntimeBundleError(HintedError):
    """Base of every error the runtime raises on purpose.

    ``where`` names the file, input or candidate concerned; ``hint`` says how to fix it.
    """

    code = "runtime-error"


class BundleFormatError(RuntimeBundleError):
    """bundle.json is missing, unreadable, or not a bundle this runtime understands."""

    code = "bundle-format"


class IntegrityError(RuntimeBundleError):
    """A file of the bundle is missing, modified, or not listed in bundle.json."""

    code = "bundle-integrity"


class ArchiveError(RuntimeBundleError):
    """A bundle archive is unsafe (absolute paths, '..', links, devices) or unreadable."""

    code = "unsafe-archive"


class SignatureError(RuntimeBundleError):
    """A public key was given and bundle.sig (model.sig, for an ECDSA key) is missing, malformed, by
    another key, or does not match bundle.json (or the check cannot run: no ``cryptography``)."""

    code = "bad-signature"


class FeedError(RuntimeBundleError):
    """Inputs given to Model.run do not match the bundle's signature."""

    code = "bad-feed"


class NoCandidateError(RuntimeBundleError):
    """No candidate of the bundle could be loaded on this device; ``decisions`` (the selection
    table's rows, ``runtime.select.Decision``) say why for each one tried."""

    code = "no-candidate"

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 decisions: Sequence[Any] = ()) -> None:
        super().__init__(message, where=where, hint=hint)
        self.decisions = list(decisions)


class BackendError(RuntimeBundleError):
    """A backend failed to open or run an artifact."""

    code = "backend-failed"


class UnknownCandidateError(RuntimeBundleError):
    """``prefer`` named a candidate id that the bundle does not have."""

    code = "unknown-candidate"


class RegistryError(RuntimeBundleError):
    """An OCI registry refused a request (credentials, missing tag), could not be reached or stopped
    answering, or served a manifest or blob whose digest does not check out (``runtime.oci``)."""

    code = "registry"


class FileIOError(RuntimeBundleError):
    """The file system refused a read or write: no space left, read-only file system, permission
    denied, I/O error. ``where`` names the file; the hint follows from the cause (see
    ``runtime.fileio.io_error``)."""

    code = "io-error"


class OutputError(FileIOError):
    """A file the runtime writes (``run --output``, ``--report``, ``X.tuned.json``) could not be
    written. Writes are atomic (temp file in the same folder, then rename), so nothing partial
    is left and an older file of that name is kept as it was."""

    code = "output-failed"
