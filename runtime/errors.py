"""The runtime's one exception tree: every error says what is wrong, where, and how to fix it."""
from __future__ import annotations

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
    """A public key was given and bundle.sig is missing, malformed, by another key, or does not
    match bundle.json (or the check cannot run: no ``cryptography``)."""

    code = "bad-signature"


class FeedError(RuntimeBundleError):
    """Inputs given to Model.run do not match the bundle's signature."""

    code = "bad-feed"


class NoCandidateError(RuntimeBundleError):
    """No candidate of the bundle could be loaded on this device."""

    code = "no-candidate"


class BackendError(RuntimeBundleError):
    """A backend failed to open or run an artifact."""

    code = "backend-failed"


class UnknownCandidateError(RuntimeBundleError):
    """``prefer`` named a candidate id that the bundle does not have."""

    code = "unknown-candidate"
