#!/usr/bin/env bash
# One-time setup on Debian: cross toolchain + a .venv holding the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."
# Cross linker for ARM artifacts; qemu-user + debootstrap for the virtual aarch64 board;
# OpenCL headers, the ICD loader and PoCL (a CPU OpenCL device) for the OpenCL runtime.
if command -v apt-get >/dev/null && ! { command -v aarch64-linux-gnu-g++ && \
    command -v qemu-aarch64-static && command -v debootstrap && command -v clinfo && \
    [ -f /usr/include/CL/cl.h ] && [ -e /usr/lib/x86_64-linux-gnu/libOpenCL.so ]; } >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends g++-aarch64-linux-gnu qemu-user-static \
    debootstrap opencl-c-headers ocl-icd-opencl-dev pocl-opencl-icd clinfo
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.13.0 is the CPU build (the pin keeps pip from pulling a multi-GB CUDA build).
.venv/bin/python -m pip install -q -e ".[host,dev]"
# xtcocotools (CrowdPose metrics): its cp311 wheel was built against numpy 1 and fails under
# numpy 2 ("numpy.dtype size changed"); built from the sdist against the installed numpy it works.
.venv/bin/python -c "import xtcocotools.cocoeval" 2>/dev/null || {
  .venv/bin/python -m pip install -q cython setuptools wheel
  .venv/bin/python -m pip install -q --no-build-isolation --no-binary xtcocotools "xtcocotools==1.14.3"
}
.venv/bin/python -c "import tvm, torch, onnxruntime, numba, cv2, xgboost, xtcocotools.cocoeval, pycocotools.cocoeval; print('tvm', tvm.__version__, 'torch', torch.__version__)"
