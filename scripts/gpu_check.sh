#!/usr/bin/env bash
# The GPU proof in one device call (docs/benchmarks.md, "GPU"): install segohem's built wheel
# and what the device image lacks from the carried wheelhouse (no network), then run the GPU
# tests and benchmarks, each stage under its own time limit, into $OUT (gpu_report.md,
# gpu_check.json, image_packages.txt, stages.log).
#
#   bash scripts/build_wheelhouse.sh            # here, before the device call: ./wheelhouse
#   device: run(command="OUT=$OUT bash scripts/gpu_check.sh", carry=["wheelhouse"], timeout_s=570)
#   bash scripts/gpu_check.sh --dry-run         # CPU, tiny sizes, same stages and report
#                                               # (tests/test_gpu_check.py runs it)
#
# Device image: torch, torchvision, lightning, torchmetrics, tensorboard and their
# dependencies (issue 21); every run writes its `pip freeze` to $OUT/image_packages.txt, the
# list scripts/build_wheelhouse.sh subtracts (docs/gpu/image_packages.txt).
#
# The wheel goes into a throwaway virtual environment that sees this interpreter's packages
# through a .pth file (torch is not reinstalled) and not the checkout (the stages run outside
# it), so a file missing from the wheel fails here as it would for a user.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
dry=0
[[ "${1:-}" == "--dry-run" ]] && dry=1
OUT="${OUT:-$repo/gpu_out}"
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base_python=${PYTHON:-python3}

{ "$base_python" -c 'import sys; print("# python %d.%d" % sys.version_info[:2])'
  "$base_python" -m pip list --format=freeze 2>/dev/null; } > "$OUT/image_packages.txt" || true

"$base_python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
# the base interpreter's site-packages, appended after the venv's own (the wheel wins)
"$base_python" -c 'import site, sysconfig; print("\n".join(dict.fromkeys(
    [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()])))' \
    > "$("$venv_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/base.pth"

install_log="$work/install.log"
if [[ $dry == 1 ]]; then
    # segohem's own wheel, built from this checkout; its dependencies come from the base env
    "$base_python" -m pip wheel --no-deps -q -w "$work/dist" . > "$install_log" 2>&1  # isolated build
    "$venv_python" -m pip install --no-deps --no-index -q "$work"/dist/segohem-*.whl >> "$install_log" 2>&1
else
    # everything segohem[test] needs beyond the image, from the wheelhouse only
    timeout 90 "$venv_python" -m pip install --no-index --find-links "$repo/wheelhouse" -q \
        "segohem[test]" > "$install_log" 2>&1 || { cat "$install_log" >&2; exit 1; }
fi

args=(--out "$OUT" --python "$venv_python" --repo "$repo" --work "$work" --install-log "$install_log")
[[ $dry == 1 ]] && args+=(--dry-run)
"$venv_python" "$repo/scripts/gpu_check.py" "${args[@]}"
