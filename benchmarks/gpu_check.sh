#!/usr/bin/env bash
# earmark's GPU paths, checked and measured in one run on a GPU machine (about 5 minutes):
#   1. the CUDA tests (tests/test_cuda.py: features, bfloat16 training, detection, serving,
#      the aisfx frontend, each against the CPU);
#   2. benchmarks/gpu_bench.py: training clips/s and the detection real-time factor on the
#      GPU and on the CPU, as JSON.
# Everything goes to $OUT (the device tool's folder; default out/gpu-check): env.json,
# test_cuda.log, test_cuda.xml, gpu.json.
#
# On the GPU machine, from the repository root:  bash benchmarks/gpu_check.sh
# Here, with no GPU, the same steps on the CPU (the tests' code against itself, the
# benchmark on the CPU alone), to check the script:  DEVICE=cpu bash benchmarks/gpu_check.sh
#
# Python: $PYTHON, else the first of .venv/bin/python, /opt/torch/.venv/bin/python3
# (the GPU image's) and python3 that imports torch. Packages it lacks travel as wheels in
# .whl/ (made here by benchmarks/gpu_wheels.sh; carry .whl) and go to /tmp/earmark-site.
# Sizes: MINUTES (recording scanned, default 20), PER_CLASS (training clips, default 200).
set -uo pipefail
OUT=${OUT:-out/gpu-check}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-20}
PER_CLASS=${PER_CLASS:-200}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in .venv/bin/python /opt/torch/.venv/bin/python3 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import torch" 2>/dev/null; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "gpu_check: no python with torch found (set PYTHON)" >&2; exit 2; }

SITE=""
if compgen -G ".whl/*.whl" >/dev/null; then
  SITE=/tmp/earmark-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl || { echo "gpu_check: installing .whl/ failed" >&2; exit 2; }
fi
export PYTHONPATH="$PWD/src:$PWD/tests${SITE:+:$SITE}"

"$PY" - "$DEVICE" >"$OUT/env.json" <<'PYEOF'
import json, platform, sys, torch
device = sys.argv[1]
facts = {"python": platform.python_version(), "torch": torch.__version__,
         "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
         "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
         "device": device}
missing = []
for name in ("earmark.cli", "soundfile", "soxr", "av", "fastapi", "python_multipart", "pytest"):
    try:
        __import__(name)
    except Exception as exc:  # what is missing, named
        missing.append(f"{name}: {type(exc).__name__}: {exc}")
facts["missing"] = missing
print(json.dumps(facts, indent=2))
PYEOF
cat "$OUT/env.json"
if grep -q '"missing": \[\]' "$OUT/env.json"; then :; else
  echo "gpu_check: packages are missing (see above; make .whl/ with benchmarks/gpu_wheels.sh)" >&2
  exit 3
fi
if [ "$DEVICE" != cpu ] && ! grep -q '"cuda_available": true' "$OUT/env.json"; then
  echo "gpu_check: torch sees no CUDA GPU here (DEVICE=cpu checks the script)" >&2
  exit 4
fi

status=0
EARMARK_TEST_DEVICE=$DEVICE EARMARK_CACHE=/tmp/earmark-gpu-cache timeout 300 \
  "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  --junitxml "$OUT/test_cuda.xml" 2>&1 | tee "$OUT/test_cuda.log" || status=1

devices="$DEVICE"
[ "$DEVICE" = cpu ] || devices="$DEVICE cpu"
# shellcheck disable=SC2086
timeout 420 "$PY" benchmarks/gpu_bench.py --devices $devices --minutes "$MINUTES" \
  --per-class "$PER_CLASS" --out "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu_bench.log" || status=1
exit $status
