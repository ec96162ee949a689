"""The virtual board's OpenCL device: PoCL (arm64) inside the board's root filesystem.

PoCL is a real OpenCL 3.0 implementation on CPUs: it compiles each OpenCL C kernel with its own
clang/LLVM and runs it, so the kit's GPU code is executed and checked, at emulated-CPU speed
(never Mali timing). Two things qemu-user cannot do for it are done on the host side:

- qemu-user cannot run a child arm64 program (no binfmt_misc here), and PoCL links each kernel
  by running ``ld``: ``hostbin/ld`` is a host script that runs the host's *cross* linker on the
  board's libraries instead (same glibc, native speed).
- qemu's ``-L`` prefix applies to ``open`` but not to ``access``, with which PoCL looks for its
  kernel library: ``lib/libboard_access.so`` (preloaded into the board's programs only, through
  ``QEMU_SET_ENV``) retries a failed ``access`` of an absolute path under the root filesystem.

The TVM side (``libtvm_runtime_opencl.so`` for the board's aarch64 wheel) is built by
``compile.boards.opencl_runtime`` and installed into the board's ``site/tvm/lib``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

PACKAGES = ["pocl-opencl-icd", "ocl-icd-libopencl1"]  # arm64, from Debian bookworm
OPENCL_LIBRARY = "libtvm_runtime_opencl.so"

ACCESS_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
/* qemu-user's -L prefix covers open() but not access(): retry under the board's root. */
int access(const char *path, int mode) {
  static int (*real_access)(const char *, int);
  if (!real_access) real_access = (int (*)(const char *, int))dlsym(RTLD_NEXT, "access");
  int r = real_access(path, mode);
  const char *root = getenv("BOARD_ROOT");
  if (r != 0 && path && path[0] == '/' && root) {
    char full[4096];
    if (snprintf(full, sizeof full, "%s%s", root, path) < (int)sizeof full)
      return real_access(full, mode);
  }
  return r;
}
"""


def has_opencl(base: Path) -> bool:
    """True when the board has PoCL and TVM's OpenCL runtime (``make opencl-runtime
    ARCH=aarch64`` installs both)."""
    return marker(base).get("opencl", False) and (base / "site/tvm/lib" / OPENCL_LIBRARY).is_file()


def marker(base: Path) -> dict:
    done = base / ".complete"
    return json.loads(done.read_text()) if done.is_file() else {}


def opencl_env(base: Path) -> dict[str, str]:
    """What the board's programs need for PoCL (empty when the board has none)."""
    if not marker(base).get("opencl"):
        return {}
    return {"BOARD_ROOT": str(base / "rootfs"), "POCL_CACHE_DIR": str(base / "pocl-cache"),
            "QEMU_SET_ENV": f"LD_PRELOAD={base / 'lib' / 'libboard_access.so'}",
            "PATH": f"{base / 'hostbin'}:{os.environ.get('PATH', '')}"}


def write_linker(base: Path) -> None:
    """``hostbin/ld``: PoCL's kernel link, run by the host's aarch64 cross linker."""
    def lib_dir(name: str) -> Path:  # where the cross toolchain finds an aarch64 library
        found = subprocess.run(["aarch64-linux-gnu-gcc", f"-print-file-name={name}"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return Path(found).resolve().parent

    ld = base / "hostbin" / "ld"
    ld.parent.mkdir(exist_ok=True)
    ld.write_text("#!/bin/sh\n# PoCL (under qemu) links its kernels here: the host's cross linker\n"
                  f'exec aarch64-linux-gnu-ld -L"{lib_dir("libc.so")}" -L"{lib_dir("libgcc.a")}" "$@"\n')
    ld.chmod(0o755)


def build_access_shim(base: Path) -> None:
    lib = base / "lib"
    lib.mkdir(exist_ok=True)
    src = lib / "board_access.c"
    src.write_text(ACCESS_SHIM)
    subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-shared", "-fPIC", "-o",
                    str(lib / "libboard_access.so"), str(src), "-ldl"], check=True)
