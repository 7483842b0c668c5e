#!/usr/bin/env bash
# Regenerate the images' hashed lock files from pyproject.toml and image/requirements-*.in.
#
#   image/lock.sh [cpu|gpu|build]... [UV-OPTION]...   (no target: all three)
#   image/lock.sh cpu --upgrade                       (newest versions instead of the pinned ones)
#
# Resolves for CPython 3.11 on Linux x86_64 with uv (`pip install uv`). Indexes, overridable for
# a mirror:
#   PYPI_INDEX       https://pypi.org/simple
#   TORCH_CPU_INDEX  https://download.pytorch.org/whl/cpu   (or a directory of wheels)
#   NVIDIA_INDEX     https://pypi.nvidia.com                 ("none": see "GPU lock" in README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-uv}
PYPI_INDEX=${PYPI_INDEX:-https://pypi.org/simple}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
NVIDIA_INDEX=${NVIDIA_INDEX:-https://pypi.nvidia.com}
# Published as a wheel-stub sdist on PyPI: building it downloads the real wheel, unverified.
TRT_LIBS=tensorrt-cu13-libs

targets=()
uv_options=()
for arg in "$@"; do
  case $arg in
    cpu | gpu | build) targets+=("$arg") ;;
    -*) uv_options+=("$arg") ;;
    *) echo "usage: image/lock.sh [cpu|gpu|build]... [UV-OPTION]..." >&2; exit 2 ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(cpu gpu build)

# Every file is pinned by its hash, so taking a version from whichever index carries it cannot
# substitute other bytes: that is what makes unsafe-best-match safe here.
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes
        --emit-build-options --default-index "$PYPI_INDEX" --index-strategy unsafe-best-match --quiet)

index_or_links() {
  if [[ -d $1 ]]; then echo --find-links "$1"; else echo --index "$1"; fi
}

lock_cpu() {
  # shellcheck disable=SC2046 # two words on purpose
  "$UV" pip compile pyproject.toml image/requirements-cpu.in "${common[@]}" --no-build \
    $(index_or_links "$TORCH_CPU_INDEX") \
    --custom-compile-command "image/lock.sh cpu" -o image/requirements-cpu.txt "${uv_options[@]}"
}

lock_gpu() {
  # tensorrt and tensorrt-cu13 are small pure-Python sdists (built at install time against the
  # hashed build constraints); every other package must come as a wheel.
  local gpu=(pyproject.toml --extra gpu image/requirements-gpu.in "${common[@]}"
             --custom-compile-command "image/lock.sh gpu" -o image/requirements-gpu.txt)
  if [[ $NVIDIA_INDEX != none ]]; then
    # shellcheck disable=SC2046
    "$UV" pip compile "${gpu[@]}" --only-binary "$TRT_LIBS" $(index_or_links "$NVIDIA_INDEX") \
      "${uv_options[@]}"
    return
  fi
  # Without NVIDIA's index the TensorRT libraries cannot be locked: resolve the rest, leave them
  # out, and say so at the top of the file (the image build then stops at `uv pip check`).
  local config
  config=$(mktemp)
  trap 'rm -f "$config"' RETURN
  printf '[[dependency-metadata]]\nname = "%s"\nversion = "11.0.0.114"\nrequires-dist = []\n' \
    "$TRT_LIBS" >"$config"
  "$UV" pip compile "${gpu[@]}" --config-file "$config" --no-emit-package "$TRT_LIBS" \
    "${uv_options[@]}"
  local body
  body=$(cat image/requirements-gpu.txt)
  {
    echo "# INCOMPLETE: $TRT_LIBS==11.0.0.114 (required by tensorrt-cu13, itself required by"
    echo "# torch-tensorrt) is missing, with whatever it depends on. PyPI carries it only as a stub"
    echo "# that downloads the wheel from https://pypi.nvidia.com at install time, and that index"
    echo "# was unreachable when this file was written. Regenerate with \`image/lock.sh gpu\`."
    echo "$body"
  } >image/requirements-gpu.txt
}

lock_build() {
  "$UV" pip compile image/requirements-build.in "${common[@]}" --no-build \
    --custom-compile-command "image/lock.sh build" -o image/requirements-build.txt \
    "${uv_options[@]}"
}

for target in "${targets[@]}"; do
  "lock_$target"
  echo "image/requirements-$target.txt"
done
