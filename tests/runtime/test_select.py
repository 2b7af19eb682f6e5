"""Candidate selection with real onnxruntime and with fake backends that fail on purpose."""
from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.backends import Backend, get_backend, register_backend, unregister_backend
from runtime.bundle import open_bundle
from runtime.errors import BackendError, NoCandidateError, UnknownCandidateError
from runtime.model import load
from runtime.select import AVAILABLE, NOT_TRIED, SELECTED, SKIPPED, format_decisions, select

CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


class FakeBackend(Backend):
    """Computes the tiny model with numpy; behaviour set by class attributes."""

    name = "fake"
    importable = True
    fail_open: Exception | None = None
    runs_on: list[str] | None = None  # None: whatever was asked
    opened: list[FakeBackend] = []

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return (True, "fake 1.0") if cls.importable else (
            False, "fake not importable: No module named 'fake'")

    def open_impl(self, path: Path, *, providers: Sequence[str],
                  provider_options: Sequence[Mapping[str, Any]], threads: int | None,
                  options: Mapping[str, Any], inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
        if self.fail_open is not None:
            raise self.fail_open
        self._asked = list(providers)
        self.options = dict(options)
        self.io = ([s.name for s in inputs], [s.name for s in outputs])
        type(self).opened.append(self)

    def run_impl(self, feeds: Mapping[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]:
        raise NotImplementedError("the fixture supplies run")

    def close_impl(self) -> None:
        self.closed = True

    @property
    def providers_in_use(self) -> list[str]:
        return list(self.runs_on if self.runs_on is not None else self._asked)

    @property
    def providers_asked(self) -> list[str]:
        return list(self._asked)


@pytest.fixture
def fake(kit: types.ModuleType) -> Iterator[type[FakeBackend]]:
    cls = type("Fake", (FakeBackend,), {"opened": [],
                                       "run_impl": lambda self, feeds, raw=False: kit.reference(feeds["x"])})
    shipped = get_backend("fake")  # the runtime's own fake (runtime.backends.fake), put back after
    register_backend("fake", cls)
    try:
        yield cls
    finally:
        unregister_backend("fake")
        if shipped is not None:
            register_backend("fake", shipped)


def statuses(decisions: list) -> list[tuple[str, str]]:
    return [(d.candidate, d.status) for d in decisions]


def test_missing_provider_skipped_next_taken(bundle_factory: Callable[..., Path],
                                             kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("cuda", providers=CUDA),
                                      kit.candidate("cpu")])
    with load(root) as model:
        assert model.candidate["id"] == "cpu"
        assert model.providers == ["CPUExecutionProvider"]
        rows = model.explain()
        assert [(r["candidate"], r["status"]) for r in rows] == [("cuda", SKIPPED),
                                                                 ("cpu", SELECTED)]
        assert "provider CUDAExecutionProvider not available (available: [" in rows[0]["reason"]
        assert "CPUExecutionProvider" in rows[0]["reason"]


def test_strict_prefer_refuses_fallback(bundle_factory: Callable[..., Path],
                                        kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("cpu"), kit.candidate("cuda", providers=CUDA)])
    with load(root, prefer="cuda") as model:  # not strict: falls back
        assert model.candidate["id"] == "cpu"
        assert statuses_dicts(model.explain()) == [("cuda", SKIPPED), ("cpu", SELECTED)]
    with pytest.raises(NoCandidateError, match="CUDAExecutionProvider not available") as info:
        load(root, prefer="cuda", strict=True)
    assert "--strict with --prefer cuda: no fallback" in info.value.message
    with pytest.raises(UnknownCandidateError, match="did you mean 'cuda'"):
        load(root, prefer="cud")


def statuses_dicts(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["candidate"], r["status"]) for r in rows]


def test_corrupt_onnx_recorded_then_next(bundle_factory: Callable[..., Path],
                                         kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("broken", "models/broken.onnx"),
                                      kit.candidate("cpu")],
                          corrupt_files=("models/broken.onnx",))
    backend, cand, decisions = select(open_bundle(root))
    try:
        assert cand.id == "cpu"
        assert decisions[0].status == SKIPPED
        assert decisions[0].reason.startswith("session creation failed: ")
    finally:
        backend.close()


def test_unknown_backend_skipped(bundle_factory: Callable[..., Path],
                                 kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("cml", backend="coreml"),
                                      kit.candidate("cpu")])
    with load(root) as model:
        assert model.explain()[0]["reason"] == \
            "backend coreml not supported by this runtime version"


def test_probe_all_marks_available_not_chosen(bundle_factory: Callable[..., Path],
                                              kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("a"), kit.candidate("b"),
                                      kit.candidate("cuda", providers=CUDA)])
    bundle = open_bundle(root)
    backend, cand, decisions = select(bundle)
    backend.close()
    assert statuses(decisions) == [("a", SELECTED), ("b", NOT_TRIED), ("cuda", NOT_TRIED)]
    backend, cand, decisions = select(bundle, probe_all=True)
    backend.close()
    assert statuses(decisions) == [("a", SELECTED), ("b", AVAILABLE), ("cuda", SKIPPED)]
    table = format_decisions(decisions)
    assert "available-not-chosen" in table and table.splitlines()[0].startswith("candidate")


def test_nothing_loads_lists_whole_table(bundle_factory: Callable[..., Path],
                                         kit: types.ModuleType) -> None:
    root = bundle_factory(candidates=[kit.candidate("cuda", providers=CUDA),
                                      kit.candidate("tfl", backend="tflite")])
    with pytest.raises(NoCandidateError) as info:
        load(root)
    text = str(info.value)
    assert "cuda" in text and "tfl" in text and "hint:" in text


def test_fake_backend_failing_at_creation_falls_back(
        bundle_factory: Callable[..., Path], kit: types.ModuleType,
        fake: type[FakeBackend]) -> None:
    fake.fail_open = BackendError("session creation failed: out of device memory")
    root = bundle_factory(candidates=[kit.candidate("gpu", backend="fake"),
                                      kit.candidate("cpu")])
    with load(root) as model:
        rows = model.explain()
    assert statuses_dicts(rows) == [("gpu", SKIPPED), ("cpu", SELECTED)]
    assert rows[0]["reason"] == "session creation failed: out of device memory"


def test_fake_backend_crashing_is_recorded_not_raised(
        bundle_factory: Callable[..., Path], kit: types.ModuleType,
        fake: type[FakeBackend]) -> None:
    fake.fail_open = RuntimeError("driver exploded")
    root = bundle_factory(candidates=[kit.candidate("gpu", backend="fake"),
                                      kit.candidate("cpu")])
    with load(root) as model:
        assert model.explain()[0]["reason"] == \
            "session creation failed: RuntimeError: driver exploded"


def test_fake_backend_not_importable(bundle_factory: Callable[..., Path], kit: types.ModuleType,
                                     fake: type[FakeBackend]) -> None:
    fake.importable = False
    root = bundle_factory(candidates=[kit.candidate("gpu", backend="fake"),
                                      kit.candidate("cpu")])
    with load(root) as model:
        assert model.explain()[0]["reason"] == "fake not importable: No module named 'fake'"


def test_degraded_session_taken_unless_strict(bundle_factory: Callable[..., Path],
                                              kit: types.ModuleType,
                                              fake: type[FakeBackend]) -> None:
    fake.runs_on = ["CPUExecutionProvider"]
    root = bundle_factory(candidates=[kit.candidate("gpu", backend="fake", providers=CUDA),
                                      kit.candidate("cpu")])
    with load(root) as model:
        row = model.explain()[0]
        assert model.candidate["id"] == "gpu" and model.degraded
        assert row["degraded"] and row["status"] == SELECTED
        assert row["reason"] == ("asked providers [CUDAExecutionProvider, CPUExecutionProvider], "
                                 "session runs on [CPUExecutionProvider]")
        x = np.ones((2, 4), np.float32)
        np.testing.assert_array_equal(model.run({"x": x})["y"], kit.reference(x)["y"])
    with load(root, strict=True) as model:
        rows = model.explain()
        assert model.candidate["id"] == "cpu" and not model.degraded
        assert rows[0]["status"] == SKIPPED and rows[0]["reason"].endswith("(refused: --strict)")
    assert fake.opened and all(b.closed for b in fake.opened)


def test_signature_mismatch_skipped(bundle_factory: Callable[..., Path], kit: types.ModuleType,
                                    fake: type[FakeBackend]) -> None:
    fake.input_names = property(lambda self: ["input_0"])  # type: ignore[assignment]
    root = bundle_factory(candidates=[kit.candidate("gpu", backend="fake"),
                                      kit.candidate("cpu")])
    with load(root) as model:
        assert "differ from the signature" in model.explain()[0]["reason"]
