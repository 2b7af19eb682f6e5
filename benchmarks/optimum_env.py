"""The Hugging Face Optimum environment benchmarks/optimum_compare.py exports with, and the
Optimum side of that benchmark (run with that environment's Python).

Optimum pins transformers (optimum-onnx 0.1.0: transformers < 4.58; edgepack runs 5.x), so it
cannot live in edgepack's environment. It gets a virtual environment of its own, created once
(``~/.cache/edgepack/bench/optimum-<version>-py<X.Y>``; ``$EDGEPACK_OPTIMUM_ENV`` moves it), in a
``.part`` folder renamed into place under a lock, with a stamp written last. Its
``edgepack-venv.pth`` puts edgepack's site-packages after its own: pip sees torch, onnxruntime,
onnx and numpy as installed, and a constraints file holds it to those versions, so it installs only
Optimum, its transformers and their small dependencies (no torch download), and never uninstalls
anything of edgepack's (those are "outside environment" for pip). The environment is made again
when the pinned versions or edgepack's site-packages change.

    python benchmarks/optimum_compare.py --setup    # create it (make test does, first)
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from packager.convert.converter_env import folder_bytes, locked

OPTIMUM_VERSION = "0.1.0"  # optimum-onnx: Optimum's ONNX exporter and onnxruntime tools (optimum >= 2)
OPTIMUM_REQUIREMENT = f"optimum-onnx[onnxruntime]=={OPTIMUM_VERSION}"
PINNED = ("torch", "onnxruntime", "onnx", "numpy")  # edgepack's, reused as they are
ENV_VAR = "EDGEPACK_OPTIMUM_ENV"
STAMP = "edgepack-optimum.json"  # written last: an environment without it is never used
INSTALL_TIMEOUT_S = 1800
# the Optimum side's processes: no TensorFlow import by transformers 4.x (edgepack's venv has it),
# nothing from the Hub
QUIET_ENV = {"USE_TF": "0", "USE_FLAX": "0", "USE_TORCH": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
             "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
             "TOKENIZERS_PARALLELISM": "false", "PYTHONNOUSERSITE": "1"}


class OptimumUnavailable(Exception):
    """Optimum could not be installed, exported or quantized: ``stage`` and the reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


# -- the Optimum environment ------------------------------------------------------------------------

def env_dir() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return Path.home() / ".cache" / "edgepack" / "bench" / f"optimum-{OPTIMUM_VERSION}-py{minor}"


def _site_packages() -> list[str]:
    """edgepack's own site-packages (the running interpreter's), for the .pth file."""
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(paths))


def _pinned() -> dict[str, str]:
    out = {}
    for name in PINNED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def _stamp(env: Path) -> dict[str, Any] | None:
    try:
        return json.loads((env / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _wanted() -> dict[str, Any]:
    """What a usable environment must match (else it is made again)."""
    return {"requirement": OPTIMUM_REQUIREMENT, "site_packages": _site_packages(), "pinned": _pinned()}


def _error_line(text: str) -> str:
    """The most telling line of a failed subprocess's output: pip's ERROR lines, else the last
    exception line, else the last line."""
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("ERROR:") or "ResolutionImpossible" in x]
    if errors:
        return " ".join(errors)[:800]
    exc = [x for x in lines if (x.split(":")[0].endswith(("Error", "Exception", "Exit"))
                                and not x.startswith("File "))]
    return (exc[-1] if exc else lines[-1] if lines else "no output")[:800]


def _du_mb(path: Path) -> float:
    return folder_bytes(path) / 1e6


def ensure_env(log: Any = None) -> dict[str, Any]:
    """The Optimum environment's stamp (creating the environment once; OptimumUnavailable when it
    cannot be made)."""
    env = env_dir()
    wanted = _wanted()
    stamp = _stamp(env)
    if stamp and all(stamp.get(k) == v for k, v in wanted.items()) and _python(env).exists():
        return {**stamp, "created_now": False, "path": str(env)}
    env.parent.mkdir(parents=True, exist_ok=True)
    with locked(env.parent / f"{env.name}.lock"):
        stamp = _stamp(env)  # another process may have made it while we waited
        if stamp and all(stamp.get(k) == v for k, v in wanted.items()) and _python(env).exists():
            return {**stamp, "created_now": False, "path": str(env)}
        return {**_create(env, wanted, log), "created_now": True, "path": str(env)}


def _create(env: Path, wanted: dict[str, Any], log: Any) -> dict[str, Any]:
    part = env.with_name(env.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    if log:
        log(f"creating the Optimum environment in {env} (once; {OPTIMUM_REQUIREMENT}, "
            f"reusing {', '.join(f'{k} {v}' for k, v in wanted['pinned'].items())})")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "venv", str(part)], capture_output=True, text=True,
                          check=False, timeout=600)
    if proc.returncode:
        shutil.rmtree(part, ignore_errors=True)
        raise OptimumUnavailable("install", f"python -m venv failed: {_error_line(proc.stderr + proc.stdout)}")
    py = _python(part)
    site = subprocess.run([str(py), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # edgepack's site-packages after the environment's own: pip sees torch & co. as installed
    (Path(site) / "edgepack-venv.pth").write_text("\n".join(wanted["site_packages"]) + "\n", encoding="utf-8")
    constraints = part / "constraints.txt"
    constraints.write_text("".join(f"{k}=={v}\n" for k, v in wanted["pinned"].items()), encoding="utf-8")
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env_vars.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONNOUSERSITE="1")
    cmd = [str(py), "-I", "-m", "pip", "install", "--no-input", "-c", str(constraints), OPTIMUM_REQUIREMENT]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env_vars,
                              timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        shutil.rmtree(part, ignore_errors=True)
        raise OptimumUnavailable("install", f"pip install {OPTIMUM_REQUIREMENT} took more than "
                                 f"{INSTALL_TIMEOUT_S} s") from None
    pip_log = proc.stdout + proc.stderr
    if proc.returncode:
        shutil.rmtree(part, ignore_errors=True)
        raise OptimumUnavailable("install", f"pip install {OPTIMUM_REQUIREMENT} (constraints: "
                                 + ", ".join(f"{k}=={v}" for k, v in wanted["pinned"].items())
                                 + f") failed: {_error_line(pip_log)}")
    installed = [line.split("Successfully installed ", 1)[1].split() for line in pip_log.splitlines()
                 if line.startswith("Successfully installed ")]
    check = subprocess.run([str(py), "-I", "-c", CHECK], capture_output=True, text=True, check=False,
                           env={**env_vars, **QUIET_ENV}, timeout=600)
    if check.returncode:
        shutil.rmtree(part, ignore_errors=True)
        raise OptimumUnavailable("install", "Optimum installed but does not import: "
                                 + _error_line(check.stderr + check.stdout))
    versions = json.loads(check.stdout.strip().splitlines()[-1])
    for name, version in wanted["pinned"].items():
        if versions.get(name) != version or not versions.get(f"{name}_file", "").startswith(
                tuple(wanted["site_packages"])):
            shutil.rmtree(part, ignore_errors=True)
            raise OptimumUnavailable("install", f"the Optimum environment's {name} is not edgepack's "
                                     f"{version}: {versions.get(name)} from {versions.get(f'{name}_file')}")
    stamp = {**wanted, "versions": {k: v for k, v in versions.items() if not k.endswith("_file")},
             "installed": installed[-1] if installed else [],
             "install_seconds": time.perf_counter() - t0, "size_mb": _du_mb(part),
             "python": platform.python_version(),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (part / STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
    shutil.rmtree(env, ignore_errors=True)
    part.rename(env)  # bin/python is a symlink: only entry-point scripts (not used) name .part
    if log:
        log(f"created {env}: {stamp['size_mb']:.0f} MB in {stamp['install_seconds']:.0f} s "
            f"(installed: {' '.join(stamp['installed'])})")
    return stamp


CHECK = """
import json, importlib.metadata as md
import optimum.exporters.onnx, optimum.onnxruntime  # noqa: F401
import torch, onnxruntime, onnx, numpy, transformers
out = {n: md.version(n) for n in ("optimum", "optimum-onnx", "transformers", "torch", "onnxruntime",
                                  "onnx", "numpy", "huggingface-hub", "tokenizers")}
for n, m in (("torch", torch), ("onnxruntime", onnxruntime), ("onnx", onnx), ("numpy", numpy)):
    out[n + "_file"] = m.__file__
print(json.dumps(out))
"""

# run with the Optimum environment's Python: argv = model folder, output folder, parity feeds
# (.npz), AutoQuantizationConfig method name. Writes out/optimum.json; each stage's failure is
# recorded there with its traceback's last line.
OPTIMUM_SIDE = r"""
import json, sys, time, traceback
from pathlib import Path
model_dir, out, feeds_path, arch = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
result = {"stage": None}
def save():
    (out / "optimum.json").write_text(json.dumps(result, indent=1))
try:
    result["stage"] = "export"
    import numpy as np, torch, transformers
    from optimum.exporters.onnx import main_export
    t0 = time.perf_counter()
    main_export(str(model_dir), output=str(out / "fp32"), task="text-classification")
    result["export_seconds"] = time.perf_counter() - t0
    result["fp32"] = str(out / "fp32" / "model.onnx")
    result["stage"] = "quantize"
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    config = getattr(AutoQuantizationConfig, arch)(is_static=False, per_channel=False)
    t0 = time.perf_counter()
    quantizer = ORTQuantizer.from_pretrained(str(out / "fp32"), file_name="model.onnx")
    quantizer.quantize(save_dir=str(out / "int8"), quantization_config=config)
    result["quantize_seconds"] = time.perf_counter() - t0
    result["int8"] = str(next((out / "int8").glob("*.onnx")))
    result["quantization_config"] = {k: (v if isinstance(v, (bool, int, float, str, type(None))) else str(v))
                                     for k, v in config.__dict__.items()
                                     if k not in ("nodes_to_quantize", "nodes_to_exclude")}
    result["stage"] = "reference"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    feeds = dict(np.load(feeds_path))
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    np.save(out / "reference.npy", logits)
    result["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    result["stage"] = "done"
except BaseException as exc:
    result["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1][:800]
    result["traceback"] = traceback.format_exc()[-4000:]
save()
"""


def quantization_arch() -> str:
    """Optimum's AutoQuantizationConfig for this CPU."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "arm64"
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def optimum_side(env: dict[str, Any], work: Path, feeds_path: Path, arch: str) -> dict[str, Any]:
    out = work / "optimum"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    script = work / "optimum_side.py"
    script.write_text(OPTIMUM_SIDE, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environ.update(QUIET_ENV)
    t0 = time.perf_counter()
    proc = subprocess.run([env["path"] + "/bin/python", "-I", str(script), str(work / "model"), str(out),
                           str(feeds_path), arch], capture_output=True, text=True, check=False,
                          env=environ, timeout=1800)
    seconds = time.perf_counter() - t0
    try:
        result = json.loads((out / "optimum.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise OptimumUnavailable("export", f"the Optimum process exited {proc.returncode} without a "
                                 f"result: {_error_line(proc.stderr + proc.stdout)}") from None
    if result.get("stage") != "done":
        raise OptimumUnavailable(result.get("stage") or "export", result.get("error") or "unknown error")
    result["seconds"] = seconds
    return result
