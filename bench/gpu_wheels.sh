#!/usr/bin/env bash
# The wheels bench/gpu_check.py needs on a GPU machine that has Python 3.12, torch with CUDA 13,
# transformers (5.17 or later), accelerate, tokenizers, typer, rich, pyyaml, psutil, jinja2, pandas,
# pyarrow and nvidia-ml-py, but no network: downloaded here, at the versions the cockpit is tested
# with, into an ignored folder that travels with the working tree.
#
#   bash bench/gpu_wheels.sh [DEST]        # DEST defaults to .gpu-wheels (in .gitignore)
#
# Then, on the GPU machine, in the repo:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-site .gpu-wheels/*.whl
#   PYTHONPATH=/tmp/gpu-site python3 bench/gpu_check.py OUT_DIR
#
# Not carried, on purpose: transformers (the cockpit runs on the machine's 5.17: 12 MiB saved),
# accelerate (the machine's 1.15 works), textual and plotext (`cockpit run` never imports them),
# torch and triton (the machine's CUDA build). bitsandbytes ships a library for every CUDA and ROCm
# release (43 MiB); only its CUDA 13 and CPU libraries are kept (BNB_CUDA_VERSION picks among them).
set -euo pipefail

DEST="${1:-.gpu-wheels}"
PYTHON="${PYTHON:-python3}"
PINS=(
  trl==1.16.0 peft==0.21.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
  bitsandbytes==0.50.2 liger-kernel==0.8.5
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  PLATFORMS+=(--platform "$tag")
done

mkdir -p "$DEST"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${PINS[@]}"

# One version of each: a wheel left from an older pin would make pip install two.
"$PYTHON" - "$DEST" "${PINS[@]}" <<'EOF'
import re, sys, zipfile
from pathlib import Path

dest, pins = Path(sys.argv[1]), sys.argv[2:]
wanted = {re.sub(r"[-_.]+", "_", p.split("==")[0]).lower(): p.split("==")[1] for p in pins}
for wheel in dest.glob("*.whl"):
    name, version = wheel.name.split("-")[:2]
    if wanted.get(name.lower()) != version:
        print(f"removed {wheel.name} (not pinned)")
        wheel.unlink()

# bitsandbytes: keep the CUDA 13 and CPU libraries; the wheel's RECORD loses the lines of the others.
keep = re.compile(r"libbitsandbytes_(cuda13\d|cpu)\.so$")
for wheel in dest.glob("bitsandbytes-*.whl"):
    with zipfile.ZipFile(wheel) as src:
        names = [n for n in src.namelist() if not n.endswith(".so") or keep.search(n)]
        if len(names) == len(src.namelist()):
            continue
        tmp = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
            for n in names:
                data = src.read(n)
                if n.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines()
                    data = ("\n".join(l for l in lines if not l.split(",")[0].endswith(".so") or keep.search(l.split(",")[0])) + "\n").encode()
                out.writestr(src.getinfo(n), data)
    tmp.replace(wheel)
    print(f"stripped {wheel.name} to its CUDA 13 and CPU libraries")
EOF

ls -1 "$DEST"
du -sh "$DEST"
