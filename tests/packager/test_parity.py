"""packager.parity: the hint for an artifact the runtime cannot open follows from the cause."""
from __future__ import annotations

from packager.parity import _unrunnable_hint


def test_hint_follows_from_why_the_artifact_cannot_run() -> None:
    # onnxruntime is installed here: never tell the user to install it for a signature mismatch
    mismatch = _unrunnable_hint("onnxruntime", "artifact inputs ['34664:0', 'x'] differ from the signature's ['x']")
    assert "install" not in mismatch and "constants it did not freeze" in mismatch
    assert "install the nosuch backend" in _unrunnable_hint("nosuch", "backend nosuch not supported")
    assert "report the model" in _unrunnable_hint("onnxruntime", "session creation failed: bad graph")
