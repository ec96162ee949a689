"""The virtual aarch64 board's root filesystem: arm64 Debian run under qemu-user.

``ensure_board`` builds it once under ``~/.cache/litepose-kit/board-arm64`` (override with
``LITEPOSE_BOARD_DIR``): Debian bookworm arm64 packages unpacked with ``dpkg -x`` (no arm64 code
runs to install them), the aarch64 wheels of the device dependencies in ``site/``, and a
``pyarm`` wrapper that runs the board's Python 3.11 under ``qemu-aarch64-static``.
``ensure_opencl`` adds PoCL (arm64) so that, with TVM's OpenCL runtime installed
(``compile.boards.opencl_runtime``), the board also serves an OpenCL device under its own key
(``compile.boards.opencl`` says how qemu-user is helped). The processes that run on it:
``compile.boards.virtual``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from compile import REPO_ROOT

from .opencl import (
    PACKAGES,
    build_access_shim,
    marker,
    opencl_env,
    write_linker,
)

logger = logging.getLogger(__name__)

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
WHEELS = ["apache-tvm==0.27.0.post1", "apache-tvm-ffi==0.1.14.post1", "numpy==2.4.6",
          "ml_dtypes", "psutil", "cloudpickle", "tornado", "opencv-python-headless", "numba",
          "llvmlite", "typing_extensions", "tqdm", "orjson"]
PLATFORMS = ["manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_26_aarch64",
             "manylinux_2_17_aarch64", "manylinux2014_aarch64"]


def board_dir() -> Path:
    return Path(os.environ.get("LITEPOSE_BOARD_DIR", Path.home() / ".cache" / "litepose-kit" / "board-arm64"))



def _run(cmd: list[str], **kw) -> None:
    logger.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def _require(tool: str, package: str) -> None:
    if not shutil.which(tool):
        raise ValueError(f"{tool} is missing: install Debian's {package} (make setup does)")


def build_rootfs(root: Path) -> None:
    """Download bookworm arm64 (minbase + python3) and unpack every package into ``root``."""
    _require("debootstrap", "debootstrap")
    dl = root.parent / "debootstrap"
    shutil.rmtree(dl, ignore_errors=True)
    _run(["debootstrap", "--download-only", "--arch=arm64", "--variant=minbase",
          "--include=python3", SUITE, str(dl), MIRROR], stdout=subprocess.DEVNULL)
    debs = sorted((dl / "var/cache/apt/archives").glob("*.deb"))
    if not debs:
        raise RuntimeError(f"debootstrap downloaded no packages into {dl}")
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    shutil.rmtree(dl)


def install_wheels(site: Path, wheels_dir: Path) -> None:
    """aarch64 cp311 wheels of the device side, installed without running arm64 code."""
    abi = ["--only-binary=:all:", "--no-deps", "--python-version", "3.11", "--implementation", "cp"]
    for platform in PLATFORMS:
        abi += ["--platform", platform]
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "download", *abi, "-d", str(wheels_dir), *WHEELS], stdout=subprocess.DEVNULL)
    _run([*pip, "install", *abi, "--no-index", "--no-compile", "--target", str(site),
          *map(str, sorted(wheels_dir.glob("*.whl")))], stdout=subprocess.DEVNULL)
    tvm = site / "tvm"
    for heavy in ("lib/libtvm_compiler.so", "3rdparty"):  # compiler and CUDA bits: runtime only
        path = tvm / heavy
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for cuda in tvm.glob("lib/*cuda*"):
        cuda.unlink()


def write_pyarm(base: Path) -> Path:
    """``pyarm``: the board's python3.11 under qemu; ``-0`` keeps child interpreters emulated."""
    pyarm = base / "pyarm"
    root = base / "rootfs"
    pyarm.write_text("#!/bin/sh\n"
                     f'exec qemu-aarch64-static -L "{root}" -0 "{pyarm}" '
                     f'"{root}/usr/bin/python3.11" "$@"\n')
    pyarm.chmod(0o755)
    return pyarm


def ensure_board() -> Path:
    """Build the board once (about 100 MB of downloads); later calls return at once."""
    base = board_dir()
    done = base / ".complete"
    if done.is_file():
        if json.loads(done.read_text()).get("wheels") == WHEELS:
            return base
        logger.info("the board's Python packages changed: reinstalling %s", base / "site")
        site = base / "site.partial"
        shutil.rmtree(site, ignore_errors=True)
        install_wheels(site, base / "wheels")
        shutil.rmtree(base / "wheels")
        old = base / "site"
        old.unlink() if old.is_symlink() else shutil.rmtree(old, ignore_errors=True)
        os.replace(site, old)
        done.write_text(json.dumps({**json.loads(done.read_text()), "wheels": WHEELS}))
        return base
    _require("qemu-aarch64-static", "qemu-user-static")
    start = time.perf_counter()
    tmp = base.with_name(base.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build_rootfs(tmp / "rootfs")
    install_wheels(tmp / "site", tmp / "wheels")
    shutil.rmtree(tmp / "wheels")
    shutil.rmtree(base, ignore_errors=True)
    os.replace(tmp, base)
    write_pyarm(base)
    done.write_text(json.dumps({"built_s": round(time.perf_counter() - start, 1), "wheels": WHEELS}))
    return base


def ensure_opencl(base: Path | None = None) -> Path:
    """Add PoCL (arm64 packages from Debian, unpacked into the root filesystem) and the two
    host-side helpers to the board, once."""
    base = base or ensure_board()
    (base / "pocl-cache").mkdir(exist_ok=True)  # compiled kernels, kept across runs
    done = marker(base)
    if done.get("opencl"):
        return base
    _require("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    dl = base / "debootstrap-opencl"
    shutil.rmtree(dl, ignore_errors=True)
    _run(["debootstrap", "--download-only", "--arch=arm64", "--variant=minbase",
          f"--include=python3,{','.join(PACKAGES)}", SUITE, str(dl), MIRROR],
         stdout=subprocess.DEVNULL)
    for deb in sorted((dl / "var/cache/apt/archives").glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(base / "rootfs")])
    shutil.rmtree(dl)
    # TVM dlopens "libOpenCL.so" (the -dev name): point it at the ICD loader, as a board's
    # ocl-icd-opencl-dev or libmali package does
    ocl = base / "rootfs/usr/lib/aarch64-linux-gnu/libOpenCL.so"
    ocl.unlink(missing_ok=True)
    ocl.symlink_to("libOpenCL.so.1")
    write_linker(base)
    build_access_shim(base)
    (base / ".complete").write_text(json.dumps({**done, "opencl": True}))
    logger.info("PoCL added to the virtual board in %s", base)
    return base


def board_env(base: Path) -> dict[str, str]:
    """Environment for the board's Python: its site-packages, and the checkout for run.py."""
    return {**os.environ, "PYTHONPATH": f"{base / 'site'}:{REPO_ROOT}",
            "NUMBA_CACHE_DIR": str(base / "numba-cache"), "PYTHONNOUSERSITE": "1",
            **opencl_env(base)}

