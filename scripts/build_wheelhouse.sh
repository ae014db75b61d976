#!/usr/bin/env bash
# Wheels of exactly what the device image lacks for `pip install "segohem[test]"` (the GPU
# check's tests and benchmarks) plus segohem's own wheel, into ./wheelhouse (git-ignored),
# for `run(..., carry=["wheelhouse"])` (docs/benchmarks.md, "GPU").
#
#   bash scripts/build_wheelhouse.sh [IMAGE_PACKAGES]   # default docs/gpu/image_packages.txt
#
# The list is derived, not typed: pip resolves segohem[test] from the project's metadata
# (`pip install --dry-run --report`), and every resolved distribution the image's
# `pip freeze` (IMAGE_PACKAGES) does not hold is downloaded (wheels for the image's Python,
# the `# python X.Y` line of that file; sdists such as antlr4 4.9.3 built into wheels here).
# gpu_check.sh writes the image's freeze to $OUT/image_packages.txt on every device run:
# copy it to docs/gpu/image_packages.txt when the image changes. A device call carries
# 64 MiB with the working tree: the script fails, naming the largest wheels, above that.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-docs/gpu/image_packages.txt}
[[ -f $image ]] || { echo "build_wheelhouse: no image package list at $image" >&2; exit 2; }
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf wheelhouse
mkdir -p wheelhouse

"$python" -m pip install --dry-run --ignore-installed --quiet --report "$work/report.json" \
    ".[test]" 2>/dev/null
"$python" - "$work/report.json" "$image" "$work/missing.txt" <<'EOF'
import json, re, sys
report, image, out = sys.argv[1:]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
have = {norm(re.split(r"[=<>@ ]", line.strip(), maxsplit=1)[0]) for line in open(image)
        if line.strip() and not line.startswith("#")}
need = [(i["metadata"]["name"], i["metadata"]["version"])
        for i in json.load(open(report))["install"]]
missing = [f"{n}=={v}" for n, v in need if norm(n) not in have and norm(n) != "segohem"]
open(out, "w").write("\n".join(missing) + "\n")
print(f"segohem[test] resolves to {len(need)} distributions; the image lacks {len(missing)}:",
      " ".join(missing))
EOF
pyver=$(sed -n 's/^# python \([0-9.]*\).*/\1/p' "$image" | head -1)
platform=(--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64
          --platform manylinux_2_17_x86_64 --platform linux_x86_64)
while read -r req; do
    [[ -z $req ]] && continue
    if ! "$python" -m pip download --no-deps --only-binary=:all: --quiet -d wheelhouse \
            ${pyver:+--python-version "$pyver"} "${platform[@]}" "$req" 2>/dev/null; then
        "$python" -m pip wheel --no-deps --quiet -w wheelhouse "$req"   # sdist only
    fi
done < "$work/missing.txt"
"$python" -m pip wheel --no-deps --quiet -w wheelhouse .   # isolated build: setuptools>=77

house=$(du -sb wheelhouse | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
limit=$((64 * 1024 * 1024))
echo "wheelhouse: $(ls wheelhouse | wc -l) wheels, $((house / 1024 / 1024)) MiB; working tree $((tree / 1024 / 1024)) MiB"
if (( house + tree > limit )); then
    echo "build_wheelhouse: wheelhouse + tree exceed the 64 MiB a device call carries; largest:" >&2
    ls -S -s --block-size=M wheelhouse | head -6 >&2
    exit 1
fi
