#!/bin/sh
# The GPU check of a bundle on a machine with an NVIDIA GPU (issue 4, part 5). Run it where the
# bundle was copied to; it needs only python3 with numpy plus torch (CUDA) and/or onnxruntime.
#
#   sh scripts/gpu-check.sh BUNDLE [OUT_DIR]
#
# It prints the device report, the selection table, golden parity of every candidate that loads,
# a benchmark of the chosen one and the tuned choice; with OUT_DIR it also saves each command's
# --json there.
# What to look for: a TorchScript candidate on [cuda] selected and passing, and ONNX candidates
# that ask for TensorRT/CUDA reported as not available (a CPU-only onnxruntime) rather than
# silently running on the CPU.
set -u
BUNDLE=${1:?usage: gpu-check.sh BUNDLE [OUT_DIR]}
OUT=${2:-}
PY=${PYTHON:-python3}
cd "$BUNDLE" || exit 2
status=0
for cmd in "doctor" "info" "verify --all" "bench --runs 200" "tune"; do
  echo "== python -m runtime $cmd"
  $PY -m runtime $cmd || status=1
  if [ -n "$OUT" ]; then
    name=$(echo "$cmd" | cut -d' ' -f1)
    $PY -m runtime $cmd --json > "$OUT/$name.json" 2>/dev/null || true
  fi
done
echo "== strict: refuse any degraded session"
$PY -m runtime info --strict || status=1
exit $status
