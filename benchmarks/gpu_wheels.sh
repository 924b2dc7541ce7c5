#!/usr/bin/env bash
# Run HERE (a machine with the package index), before benchmarks/gpu_check.sh goes to a GPU
# machine: downloads into .whl/ the wheels of earmark's packages that the GPU image lacks
# (its python3 is 3.12 with torch, numpy, scipy, scikit-learn, pandas, onnx, onnxruntime,
# typer, rich... already), at the versions this checkout's venv has. .whl/ is git-ignored
# through .git/info/exclude; name it in the device call's `carry` (about 45 MB).
#   bash benchmarks/gpu_wheels.sh [PYTHON]
set -euo pipefail
PY=${1:-${PYTHON:-.venv/bin/python}}
PKGS="av soundfile cffi pycparser soxr librosa audioread pooch platformdirs decorator
fastapi starlette pydantic pydantic-core annotated-types typing-inspection python-multipart
skops aisfx"
exclude=$(git rev-parse --git-path info/exclude)
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
mkdir -p .whl
for p in $PKGS; do
  v=$("$PY" -m pip show "$p" 2>/dev/null | sed -n 's/^Version: //p')
  spec=$p${v:+==$v}
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$spec" ||
    echo "gpu_wheels: no wheel for $spec (the check names what is missing there)" >&2
done
ls -1 .whl
