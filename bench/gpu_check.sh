#!/usr/bin/env bash
# The GPU suite on a fresh GPU machine that cannot reach a package index.
#
#   bench/gpu_check.sh download   # here, with pip access: fetch the wheels into .whl/
#   bench/gpu_check.sh [ARGS...]  # there: venv, install from .whl/, run the suite
#
# The run creates a venv that sees the machine's own torch (--system-site-packages), installs
# aiinfra with its `bench` extra and their missing dependencies from the carried wheels only
# (--no-index), tries the `gpu` extra (torch-tensorrt) too, and runs `aiinfra bench
# --gpu-suite` under a time limit. Before the suite it runs the GPU tests (`pytest -m gpu`:
# TensorRT engines built, served, and loaded again from the engine cache), their result in
# gpu-tests.xml. Without torch-tensorrt the suite still runs and reports the TensorRT rows
# as skipped with the reason, and the GPU tests fail saying what is missing. ARGS go to
# `aiinfra bench` (e.g. --batch-sizes 1,8,32).
#
# Environment: WHEELS (default .whl), OUT (results folder, default ./gpu-suite-out),
# GPU_CHECK_TIMEOUT (seconds for tests and suite together, default 570: one 10-minute call
# with room for the install), GPU_TESTS_TIMEOUT (of that, the most the tests take, default
# 120; the suite gets the rest and stops its own steps at 450 s), PYTHON (default python3),
# VENV (default /tmp/aiinfra-gpu-venv), PY_VERSION (download target, default 3.12).
set -euo pipefail

cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.whl}
PYTHON=${PYTHON:-python3}

# Runtime dependencies that a CUDA machine image with torch usually lacks; pip resolves
# the rest of their needs. torch itself always comes from the machine.
DEPS=(fastapi "uvicorn[standard]" pydantic pydantic-settings orjson python-json-logger
      redis "psycopg[binary,pool]" xxhash prometheus-client typer rich aiohttp httpx pyyaml
      nvidia-ml-py pytest pytest-asyncio pytest-timeout)

if [[ "${1:-}" == "download" ]]; then
    mkdir -p "$WHEELS"
    platforms=()
    for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
               manylinux2014_x86_64 manylinux1_x86_64; do
        platforms+=(--platform "$tag")
    done
    "$PYTHON" -m pip download --only-binary=:all: --python-version "${PY_VERSION:-3.12}" \
        --implementation cp "${platforms[@]}" -d "$WHEELS" "${DEPS[@]}"
    du -sh "$WHEELS"
    exit 0
fi

OUT=${OUT:-$PWD/gpu-suite-out}
VENV=${VENV:-/tmp/aiinfra-gpu-venv}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

"$PYTHON" -m venv --system-site-packages "$VENV"
pip=("$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS"
     --no-build-isolation --no-compile --disable-pip-version-check)
if ! "${pip[@]}" -e '.[gpu,bench]' 2>"$OUT/pip-gpu.log"; then
    echo "the gpu extra did not install from $WHEELS (see pip-gpu.log): TensorRT rows will" \
         "be skipped unless the machine has torch_tensorrt" >&2
    "${pip[@]}" -e '.[bench]' 2>&1 | tee "$OUT/pip.log"
fi
"$VENV/bin/python" -c 'import torch; print("torch", torch.__version__, "cuda",
    torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available()
    else "-")'

export PYTHONUNBUFFERED=1
set +e
started=$SECONDS
timeout --signal=INT --kill-after=10 "${GPU_TESTS_TIMEOUT:-120}" \
    "$VENV/bin/python" -m pytest -m gpu -p no:cacheprovider tests/serving/test_tensorrt_gpu.py \
    --junitxml="$OUT/gpu-tests.xml" 2>&1 | tee "$OUT/gpu-tests.log"
tests=${PIPESTATUS[0]}
left=$(( ${GPU_CHECK_TIMEOUT:-570} - (SECONDS - started) ))
timeout --signal=INT --kill-after=20 "$(( left > 60 ? left : 60 ))" \
    "$VENV/bin/aiinfra" bench --gpu-suite --output "$OUT/gpu-suite.json" "$@" \
    2>&1 | tee "$OUT/gpu-suite.log"
status=${PIPESTATUS[0]}
set -e
echo "gpu tests exit status $tests, gpu suite exit status $status; results in $OUT" >&2
if [[ "$status" -eq 0 ]]; then
    status=$tests
fi
exit "$status"
