"""Bad input: a clear error, a non-zero exit, nothing half-written.

Every manifest in tests/packager/corpus/ (except good.yaml, the control) is broken in exactly one
way. Each is built with `python -m packager build <manifest> --out <tmp> -q` as a user would; the
build must exit 2 (user error: stderr starts with "error:", names the file and field or step, gives
a hint where a fix is known, no traceback) or 1 for a build failure (the summary names what failed),
and leave no bundle under --out. With --debug, the traceback is shown.

All builds run at once in a module fixture (most fail in well under a second; the torch cases
pay the torch import), so the file stays well under a minute.
"""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import REPO

CORPUS = Path(__file__).resolve().parent / "corpus"
EXIT_FAILED, EXIT_USER_ERROR = 1, 2


@dataclass(frozen=True)
class Case:
    where: str                       # the field or step named right after the file, on the first line
    says: tuple[str, ...] = ()       # more text the message must contain
    hint: bool = True                # a fix is known: "hint:" must be there
    code: int = EXIT_USER_ERROR
    file: str = ""                   # the file the error names, when it is not the manifest itself
    says_anywhere: tuple[str, ...] = field(default=())  # for build failures: text in the summary


T = "targets/"
CASES: dict[str, Case] = {
    # YAML
    "yaml_malformed": Case(":5:1", ("malformed YAML",)),
    "yaml_bad_indent": Case(":5:9", ("malformed YAML",)),
    "yaml_duplicate_key": Case(":8:1", ("'outputs' appears twice",)),
    "yaml_empty": Case("", ("expected a mapping, got nothing",)),
    "yaml_list": Case("", ("expected a mapping, got list",)),
    "yaml_python_tag": Case(":2:7", ("python/object/apply",)),
    "yaml_not_utf8": Case("", ("not UTF-8",)),
    # wrong types and values
    "type_name_number": Case("name", ("expected a string, got int 42",), hint=False),
    "type_name_spaces": Case("name", ("'Tiny Model'",)),
    "type_shape_string": Case("inputs[0].shape", ("shape must be a list",)),
    "type_dimension_zero": Case("inputs[0].shape[1]", ("dimension 0",)),
    "type_dtype_typo": Case("inputs[0].dtype", ("did you mean 'float32'",)),
    "type_inputs_mapping": Case("inputs", ("expected a list, got dict",)),
    "type_samples_string": Case("calibration.samples", ("expected an integer",), hint=False),
    "type_targets_string": Case("targets", ("expected a list",)),
    "type_tolerance_negative": Case("tolerances.fp32.atol", ("must be >= 0",), hint=False),
    # keys
    "key_unknown_top": Case("outptus", ("did you mean 'outputs'",)),
    "key_unknown_nested": Case("source.entrypoint", ("did you mean 'entry'",)),
    "key_missing_required": Case("inputs", ("missing required field 'inputs'",)),
    "key_framework_typo": Case("source.framework", ("did you mean 'torch'",)),
    # the model file
    "model_onnx_missing": Case("source.path", ("missing.onnx not found",)),
    "model_onnx_garbage": Case("source.path", ("garbage.onnx is not a readable ONNX model",)),
    "model_onnx_truncated": Case("source.path", ("truncated.onnx is not a readable ONNX model",)),
    "model_onnx_empty": Case("source.path", ("empty.onnx fails the ONNX checker",)),
    # weights and entry points
    "weights_missing": Case("source.entry", ("FileNotFoundError", "run train.py first", "trained weights?")),
    "entry_file_missing": Case("source.entry", ("'nowhere.py' not found",)),
    "entry_function_missing": Case("source.entry", ("no function 'bulid'", "did you mean 'build'")),
    "entry_raises": Case("source.entry", ("ValueError: layer sizes do not add up",)),
    "entry_syntax_error": Case("source.entry", ("SyntaxError",)),
    "entry_import_error": Case("source.entry", ("No module named 'edgepack_no_such_module'",)),
    "entry_module_missing": Case("source.entry", ("cannot import module 'edgepack_nowhere.models'",)),
    "entry_not_a_module": Case("source.entry", ("returned dict, not a torch.nn.Module",)),
    "entry_bad_kwargs": Case("source.entry", ("unexpected keyword argument 'width'",)),
    # calibration files
    "calib_npz_missing": Case("calibration.file", ("missing.npz not found",)),
    "calib_npz_wrong_name": Case("calibration.file", ("unexpected input 'image'",)),
    "calib_npz_wrong_shape": Case("calibration.file", ("has 8 at axis 2",)),
    "calib_npz_wrong_dtype": Case("calibration.file", ("dtype float16", "float32")),
    "calib_npz_nan": Case("calibration.file", ("NaN/Inf",)),
    "calib_npz_inf": Case("calibration.file", ("NaN/Inf",)),
    "calib_npz_pickled": Case("calibration.file", ("pickled", "never loaded")),
    "calib_npz_garbage": Case("calibration.file", ("not an .npz archive",)),
    "calib_npz_truncated": Case("calibration.file", ("cannot read truncated.npz",)),
    "calib_npz_no_samples": Case("calibration.file", ("holds no samples",)),
    "calib_npz_no_arrays": Case("calibration.file", ("missing input(s) ['x']",)),
    "calib_not_npz": Case("calibration.file", ("is not an .npz file",)),
    # calibration entry points
    "calib_entry_wrong_name": Case("calibration.entry", ("unexpected input 'image'",)),
    "calib_entry_wrong_shape": Case("calibration.entry", ("has 5 at axis 2",)),
    "calib_entry_wrong_rank": Case("calibration.entry", ("has shape [8, 4, 4]",)),
    "calib_entry_wrong_dtype": Case("calibration.entry", ("dtype float64",)),
    "calib_entry_nan": Case("calibration.entry", ("NaN/Inf",)),
    "calib_entry_inf": Case("calibration.entry", ("NaN/Inf",)),
    "calib_entry_strings": Case("calibration.entry", ("dtype <U1",)),
    "calib_entry_not_a_dict": Case("calibration.entry", ("expected a dict", "got ndarray")),
    "calib_entry_nothing": Case("calibration.entry", ("gave no samples",)),
    "calib_entry_number": Case("calibration.entry", ("returned int",)),
    "calib_entry_raises_midway": Case("calibration.entry", ("OSError: camera disconnected",)),
    "eval_not_pairs": Case("evaluation.entry", ("not a (feeds, labels) pair",)),
    "eval_metric_bad": Case("evaluation.metric", ("must be accuracy or an entry point",)),
    "eval_budget_negative": Case("evaluation.max_accuracy_drop", (">= 0",)),
    "eval_metric_not_a_number": Case("evaluation.metric", ("model.py:metric_not_a_number returned [",
                                                           "not a finite number")),
    # the model's real signature differs from the manifest's
    "signature_torch_channels": Case("inputs", ("running the torch model failed", "3 channels")),
    "signature_torch_outputs": Case("outputs", ("returns 1 output(s)", "lists 2")),
    "signature_onnx_input_name": Case("inputs", ("no input 'x'", "['input']")),
    "signature_onnx_rank": Case("inputs", ("rank 4 in the model",)),
    "signature_onnx_dtype": Case("inputs", ("float32 in the model, float16 in the manifest",)),
    # an op a format cannot express
    "op_onnx_custom_domain": Case("source.path", ("'FancyActivation'", "com.example.edgepack", "onnx")),
    "op_torch_histc_onnx": Case("", code=EXIT_FAILED, says_anywhere=("FAILED", "aten::histc", "ONNX")),
    # targets
    "target_unknown": Case("targets[0]", ("unknown target 'x86-cpuu'", "did you mean 'x86-cpu'")),
    "target_file_missing": Case("targets[0]", ("'targets/nothere.yaml' not found",)),
    "target_typo_key": Case("candidates[0].precison", ("did you mean 'precision'",), file=T + "typo_key.yaml"),
    "target_typo_value": Case("arch", ("did you mean 'aarch64'",), file=T + "typo_value.yaml"),
    "target_malformed": Case(":6:1", ("malformed YAML",), file=T + "malformed.yaml"),
    "target_bad_provider": Case("candidates[0].providers[0]", ("did you mean 'CUDAExecutionProvider'",),
                                file=T + "bad_provider.yaml"),
    "target_mixed_dynamic": Case("candidates[0].quantization.fallback",
                                 ("applies to onnx and tflite int8 static candidates, not tflite int8 dynamic",),
                                 file=T + "mixed_dynamic.yaml"),
    "target_mixed_typo": Case("candidates[0].quantization.fallback", ("did you mean 'mixed'",),
                              file=T + "mixed_typo.yaml"),
    "target_explain_negative": Case("explain_bytes", (">= 0",), file=T + "explain_negative.yaml"),
}
# one case per kind of failure, rerun with --debug (the traceback must then be shown)
DEBUG_CASES = ["yaml_malformed", "model_onnx_garbage", "weights_missing",
               "calib_entry_wrong_shape", "target_typo_key"]


def _build(manifest: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "packager", "build", str(manifest), "--out", str(out), "-q",
                           *extra], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """Every corpus build (and the --debug reruns), run concurrently once for the module."""
    root = tmp_path_factory.mktemp("bad-input")
    jobs = [(name, ()) for name in sorted(CASES)] + [("good", ())] + [(n, ("--debug",)) for n in DEBUG_CASES]

    def run(job: tuple[str, tuple[str, ...]]) -> tuple[str, tuple[subprocess.CompletedProcess[str], Path]]:
        name, extra = job
        key = name + ("--debug" if extra else "")
        out = root / key
        return key, (_build(CORPUS / f"{name}.yaml", out, *extra), out)

    with ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2))) as pool:
        return dict(pool.map(run, jobs))


def _bundles(out: Path) -> list[str]:
    """Anything under --out that is (part of) a bundle: folders, archives, bundle.json files."""
    if not out.exists():
        return []
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.is_dir() or p.name.endswith(".tar.gz") or p.name == "bundle.json")


def test_every_corpus_manifest_has_a_case() -> None:
    manifests = {p.stem for p in CORPUS.glob("*.yaml")} - {"good"}
    assert manifests == set(CASES), "add an expectation for each corpus manifest (and only those)"


def test_control_builds(runs: dict) -> None:
    """good.yaml, which every case breaks in one way, builds: the failures are the breakage's."""
    proc, out = runs["good"]
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert _bundles(out), "the control build writes a bundle (so 'no bundle' below means something)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, runs: dict) -> None:
    case = CASES[name]
    proc, out = runs[name]
    shown = f"exit {proc.returncode}\n--- stderr\n{proc.stderr}\n--- stdout\n{proc.stdout}"
    assert proc.returncode == case.code, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert "internal error" not in proc.stderr, shown
    assert _bundles(out) == [], f"a failed build left {_bundles(out)} under --out"
    if case.code == EXIT_FAILED:  # a build failure: the summary says what failed and why
        for text in case.says_anywhere:
            assert text in proc.stdout, shown
        return
    assert proc.stderr.startswith("error: "), shown
    first = proc.stderr.splitlines()[0]
    file = str(CORPUS / case.file) if case.file else str(CORPUS / f"{name}.yaml")
    assert first.startswith(f"error: {file}"), f"the error names {file} first\n{shown}"
    rest = first[len(f"error: {file}"):]
    if case.where.startswith(":"):  # line:column of a YAML syntax error
        assert rest.startswith(case.where), shown
    elif case.where:
        assert rest.startswith(f": {case.where}"), f"the error names the field {case.where!r}\n{shown}"
    for text in case.says:
        assert text in proc.stderr, shown
    assert ("\n  hint: " in proc.stderr) == case.hint, shown


@pytest.mark.parametrize("name", DEBUG_CASES)
def test_debug_shows_the_traceback(name: str, runs: dict) -> None:
    proc, out = runs[name + "--debug"]
    assert proc.returncode == CASES[name].code, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "error: " in proc.stderr and _bundles(out) == []
