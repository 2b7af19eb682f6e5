"""A specific reason for a step that died without a result (a crash, a timeout, an exit without
JSON): the signal or exit code, the error line it printed, and where it was, read from the Python
traceback or the faulthandler dump (the zoo runs every step with PYTHONFAULTHANDLER=1 and aborts a
timed-out one with SIGABRT, so the dump names the packager module and the library it was in)."""
from __future__ import annotations

import re
import signal

# packager module -> the build step it does (named in a crash reason)
STEP_OF = {
    "packager/convert/torch_to_onnx.py": "export (torch.onnx.export)",
    "packager/convert/exporter_choice.py": "export (choosing the torch exporter)",
    "packager/convert/torch_to_tflite.py": "tflite (litert-torch)",
    "packager/convert/torch_to_torchscript.py": "torchscript",
    "packager/convert/tf_to_onnx.py": "export (tf2onnx)",
    "packager/convert/tf_to_tflite.py": "tflite (TFLiteConverter)",
    "packager/convert/onnx_to_tflite.py": "tflite (onnx2tf)",
    "packager/convert/onnx2tf_driver.py": "tflite (onnx2tf)",
    "packager/convert/converter_env.py": "tflite (onnx2tf environment)",
    "packager/passes/quantize.py": "int8 quantization",
    "packager/passes/float16.py": "fp16",
    "packager/passes/simplify.py": "simplify (onnxsim)",
    "packager/passes/opset.py": "opset upgrade",
    "packager/passes/prepare.py": "prepare",
    "packager/parity.py": "parity",
    "packager/sources/torch_source.py": "load (torch)",
    "packager/sources/tf_source.py": "load (tensorflow)",
    "packager/sources/onnx_source.py": "load (onnx)",
    "packager/inputs/data.py": "calibration data",
    "packager/bundle/writer.py": "bundle write",
}
FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+),? in (?P<func>\S+)')
WAITING = ("threading.py", "concurrent/futures", "selectors.py", "queue.py", "multiprocessing/", "subprocess.py")
ERROR_LINE = re.compile(r"^(internal error|error|Fatal Python error|[A-Za-z_.]*(Error|Exception)):\s*\S")


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    m = re.search(r"(packager|runtime|zoo)/.*", path)
    return m[0] if m else path


def _blocks(stderr: str) -> list[list[tuple[str, str, str]]]:
    """Stacks as lists of (path, line, func), innermost first (faulthandler prints them so; Python
    tracebacks are reversed to match)."""
    blocks: list[list[tuple[str, str, str]]] = []
    current: list[tuple[str, str, str]] = []
    innermost_first = False
    for line in stderr.splitlines():
        if "most recent call first" in line or line.startswith("Traceback (most recent call last)"):
            if current:
                blocks.append(current if innermost_first else current[::-1])
            current, innermost_first = [], "most recent call first" in line
            continue
        m = FRAME.match(line)
        if m:
            current.append((m["path"], m["line"], m["func"]))
    if current:
        blocks.append(current if innermost_first else current[::-1])
    return blocks


def where(stderr: str) -> str | None:
    """'in <step> (packager/...py:func line N), inside <library frame>' for the busiest stack."""
    for block in reversed(_blocks(stderr)):
        busy = [f for f in block if not any(w in f[0] for w in WAITING)]
        ours = [f for f in block if "/packager/" in f[0] or "/runtime/" in f[0] or "/zoo/" in f[0]]
        if not busy or not ours:
            continue
        path, line, func = ours[0]
        short = _short(path)
        step = STEP_OF.get(short)
        text = f"in {step + ' ' if step else ''}({short}:{func} line {line})"
        inner = busy[0]
        if inner is not ours[0] and "/packager/" not in inner[0]:
            text += f", inside {_short(inner[0])}:{inner[2]}"
        return text
    return None


def error_line(stderr: str) -> str | None:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ERROR_LINE.match(ln) and not ln.startswith("Fatal Python error: Aborted"):
            return ln[:600]
    return None


def crash_reason(stage: str, rc: int | None, stderr: str, timed_out: bool, timeout: float,
                 error: str | None = None) -> str:
    """One line: what happened to ``stage`` and where."""
    if timed_out:
        head = f"{stage} timed out after {timeout:.0f} s"
    elif rc is not None and rc < 0:
        try:
            head = f"{stage} killed by {signal.Signals(-rc).name}"
        except ValueError:
            head = f"{stage} killed by signal {-rc}"
    elif rc is not None and rc > 128 + 1 and rc - 128 in {s.value for s in signal.Signals}:
        head = f"{stage} killed by {signal.Signals(rc - 128).name}"
    else:
        head = f"{stage} exited {rc} without a result"
    loc = where(stderr)
    msg = error or error_line(stderr)
    parts = [head + (f" {loc}" if loc else "")]
    if msg:
        parts.append(msg)
    elif not loc:
        tail = [ln.strip() for ln in stderr.splitlines() if ln.strip()][-2:]
        if tail:
            parts.append(" | ".join(tail)[:400])
    return ": ".join(parts)
