#!/usr/bin/env bash
# The GPU figures of issue 15 in one short run, on a bare CUDA machine holding a copy of this tree:
#   bash bench/gpu_check.sh [OUT_DIR]        (default: bench/results)
# Uses the machine's python3 with CUDA torch; packages it lacks (kornia, the peer) are installed from wheels in
# ./.whl when they are there (pip download them where the registry is reachable). Writes speed-cuda.{json,md}
# (Key.Net's response at 640x480 and 1280x720 against kornia on the same GPU) and tracking-cuda.{json,md}
# (end-to-end fps of the tracker on the demo and the rendered photos). Each step is bounded so that the whole
# run stays under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench/results}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
if [ -d .whl ]; then
  "$PY" -m pip install --quiet --no-index --find-links .whl -r requirements.txt 2>&1 | tail -3 || true
fi
"$PY" - <<'PYEOF' || { echo "no CUDA torch in $PY"; exit 1; }
import torch
assert torch.cuda.is_available(), "CUDA is not available"
print("GPU:", torch.cuda.get_device_name(), "torch", torch.__version__)
PYEOF
status=0
timeout 240 "$PY" -m bench.speed --device cuda --json 2>&1 | tee "$OUT/speed-cuda.log" || status=1
timeout 240 "$PY" -m bench.tracking --device cuda --tag cuda --photos 3 --photo-frames 60 --real-frames 0 \
  --still-frames 60 2>&1 | tee "$OUT/tracking-cuda.log" || status=1
if [ "$OUT" != bench/results ]; then
  cp bench/results/speed-cuda.* bench/results/tracking-cuda.* "$OUT"/ 2>/dev/null || true
fi
exit $status
