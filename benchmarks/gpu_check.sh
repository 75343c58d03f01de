#!/usr/bin/env bash
# The device session's one command for benchmarks/gpu_check.py (its options pass through):
#     bash benchmarks/gpu_check.sh                 # writes $OUT/gpu_check.csv and $OUT/gpu_check.log
# The device machine has no registry: its python3 holds torch (CUDA), numpy, safetensors, huggingface_hub and
# einops, but not av, trimesh or plotly (vggt_mv.io.video and vggt_mv.pipeline import them). Carry them as wheels,
# made here first, at no device time, with the versions of this checkout's .venv:
#     bash benchmarks/gpu_check.sh --prepare       # -> .whl/ (ignored by git), about 46 MB
# and carry [".whl", ".reference/vggt/vggt"] (the official code, optional: without it its rows say "skipped").
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(av trimesh plotly)

if [ "${1:-}" = "--prepare" ]; then
    venv_python=.venv/bin/python
    [ -x "$venv_python" ] || venv_python=python3
    mkdir -p .whl
    for name in "${WHEELS[@]}"; do
        version=$("$venv_python" -c "import importlib.metadata as m; print(m.version('$name'))") || exit 1
        "$venv_python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$name==$version" || exit 1
    done
    du -ch .whl/*.whl | tail -1
    [ -f .reference/vggt/vggt/models/vggt.py ] \
        || echo "note: .reference/vggt/vggt is missing: the official VGGT rows will be skipped (fetch xianglic/vggt)"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
OUT="${OUT:-out/gpu_check}"
mkdir -p "$OUT"
site="${GPU_CHECK_SITE:-/tmp/gpu-check-site}"
carried=()
for name in "${WHEELS[@]}"; do
    for wheel in .whl/"$name"-*.whl; do
        [ -f "$wheel" ] && carried+=("$wheel")
    done
done
if [ "${#carried[@]}" -gt 0 ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "${carried[@]}" || exit 1
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
"$PYTHON" benchmarks/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
