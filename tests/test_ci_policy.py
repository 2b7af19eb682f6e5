"""The CI rule in tests/conftest.py (CIPolicy): under CI=true a test that would be skipped fails with
the skip reason; elsewhere it stays a skip, listed with its reason in pytest's summary.

Each test runs pytest itself (pytester, in-process) on small test files, with the policy plugged in.
"""
from __future__ import annotations

import pytest

from .conftest import CIPolicy, ci_mode

pytest_plugins = ["pytester"]

# every way a test can be skipped: in the test, by a mark, by importorskip, by a fixture at setup
SKIPPING = '''
import pytest

@pytest.fixture
def gpu():
    pytest.skip("needs a GPU")

def test_skip_in_body():
    pytest.skip("no chromium here")

@pytest.mark.skipif(True, reason="needs root")
def test_skipif_mark():
    pass

def test_importorskip():
    pytest.importorskip("edgepack_no_such_module")

def test_fixture_skips(gpu):
    pass

def test_passes():
    assert True

@pytest.mark.xfail(reason="a known failure, not a missing capability")
def test_xfail():
    assert False
'''

MODULE_SKIP = '''
import pytest

pytest.importorskip("edgepack_no_such_module")

def test_never_collected():
    pass
'''

REASONS = ("no chromium here", "needs root", "could not import 'edgepack_no_such_module'", "needs a GPU")


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None,
        **files: str) -> pytest.RunResult:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(**files)
    return pytester.runpytest("-ra", "-p", "no:cacheprovider", plugins=[CIPolicy()])


def test_under_ci_every_kind_of_skip_fails_with_its_reason(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, "true", test_skips=SKIPPING)
    # a skip at setup (skipif, a fixture) is a FAILED test too, not an ERROR
    result.assert_outcomes(failed=4, passed=1, xfailed=1, skipped=0, errors=0)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    for reason in REASONS:
        assert f"skipped under CI=true: {reason}" in out, reason
    for name in ("test_skip_in_body", "test_skipif_mark", "test_importorskip", "test_fixture_skips"):
        assert f"FAILED test_skips.py::{name}" in out, name


def test_outside_ci_skips_stay_skips_listed_with_reasons(pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, None, test_skips=SKIPPING)
    result.assert_outcomes(skipped=4, passed=1, xfailed=1, failed=0, errors=0)
    assert result.ret == pytest.ExitCode.OK
    out = result.stdout.str()
    assert "skipped under CI" not in out
    for reason in REASONS:  # -ra: the short summary names each skip and why
        assert any(line.startswith("SKIPPED [1]") and reason in line for line in out.splitlines()), reason


def test_module_skipped_at_collection_fails_under_ci_and_the_run_goes_on(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"test_needs_module": MODULE_SKIP, "test_other": "def test_runs():\n    assert True\n"}
    result = run(pytester, monkeypatch, "true", **files)
    result.assert_outcomes(failed=1, passed=1, skipped=0, errors=0)
    out = result.stdout.str()
    assert "skipped under CI=true: could not import 'edgepack_no_such_module'" in out
    assert "FAILED test_needs_module.py::module-skipped" in out

    outside = run(pytester, monkeypatch, "false", **files)
    outside.assert_outcomes(skipped=1, passed=1, failed=0, errors=0)
    assert "could not import 'edgepack_no_such_module'" in outside.stdout.str()


@pytest.mark.parametrize("value, expected", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), (" True ", True),
    ("false", False), ("0", False), ("no", False), ("", False), (None, False),
])
def test_ci_values(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert ci_mode() is expected
