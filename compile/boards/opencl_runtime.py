"""TVM's OpenCL runtime (``libtvm_runtime_opencl.so``) built from an apache/tvm source tree.

The PyPI wheels of TVM (x86-64 and aarch64) ship no OpenCL runtime, so an ``opencl`` artifact
cannot even be loaded. This builds the library TVM's own ``cmake/modules/OpenCL.cmake`` makes
with ``USE_OPENCL=ON`` — ``src/backend/opencl/runtime/*.cc`` plus the wrapper that dlopens
``libOpenCL.so`` at run time, so nothing links against an OpenCL driver — compiled against the
headers of the TVM runtime it will load into and linked to that runtime's ``libtvm_runtime.so``
and ``libtvm_ffi.so``: natively for x86-64, with the cross compiler for aarch64 (against the
aarch64 wheel of the virtual board). ``tvm.backend.opencl`` loads it from the folder of the
loaded ``libtvm_runtime`` (where :func:`build_runtime` installs it).

The source tree is found in this order: ``--tvm-source`` / ``TVM_SOURCE``; the kit's cached
clone (``~/.cache/litepose-kit/tvm-src``); a fresh ``git clone`` of the matching release where
the network allows.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from runtime.atomic import atomic_path
from runtime.library import elf_machine

logger = logging.getLogger(__name__)

LIBRARY = "libtvm_runtime_opencl.so"
SOURCES = ("src/backend/opencl/runtime/opencl_device_api.cc",
           "src/backend/opencl/runtime/opencl_module.cc",
           "src/backend/opencl/runtime/opencl_wrapper/opencl_wrapper.cc")
TVM_GIT = "https://github.com/apache/tvm.git"
COMPILERS = {"x86_64": "g++", "aarch64": "aarch64-linux-gnu-g++"}
ARCHES = tuple(COMPILERS)
CL_HEADERS = Path("/usr/include/CL")  # Debian's opencl-c-headers (make setup installs them)


def cached_source() -> Path:
    """Where the kit keeps the TVM source tree it cloned (one per machine, outside the repo)."""
    return Path(os.environ.get("LITEPOSE_CACHE", Path.home() / ".cache" / "litepose-kit")) / "tvm-src"


def check_source(path: str | Path) -> Path:
    """``path`` if it is an apache/tvm tree with the OpenCL runtime sources, else ``ValueError``."""
    path = Path(path).expanduser()
    missing = [s for s in SOURCES if not (path / s).is_file()]
    if missing:
        raise ValueError(f"{path} is not an apache/tvm source tree with the OpenCL runtime "
                         f"(missing {', '.join(missing)}); pass a checkout of apache/tvm "
                         f"(0.21 or newer: src/backend/opencl/) as TVM_SOURCE=DIR")
    return path


def find_source(explicit: str | Path | None = None) -> Path | None:
    """The TVM source tree to build from: ``explicit``, ``$TVM_SOURCE``, the cached clone; None
    when there is none (a bad explicit path is an error, not a fallback)."""
    for candidate in (explicit, os.environ.get("TVM_SOURCE") or None):
        if candidate:
            return check_source(candidate)
    cached = cached_source()
    return cached if all((cached / s).is_file() for s in SOURCES) else None


def clone_source(url: str = TVM_GIT, ref: str | None = None, dest: Path | None = None) -> Path:
    """``git clone --depth 1`` of ``ref`` (default: the release tag of the installed TVM) into
    the cache; only the runtime sources are needed, so no submodules."""
    import tvm

    ref = ref or "v" + re.match(r"\d+\.\d+\.\d+", tvm.__version__).group(0)
    dest = Path(dest or cached_source())
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["git", "clone", "--quiet", "--depth", "1", "--branch", ref, url, str(tmp)]
    logger.info("$ %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"git clone of {url} at {ref} failed ({done.stderr.strip()[-300:]}); "
                           "pass an apache/tvm checkout as TVM_SOURCE=DIR instead")
    check_source(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def source_version(source: Path) -> str:
    """``TVM_VERSION`` of the tree, plus its git commit when it is a checkout."""
    text = (source / "include/tvm/runtime/base.h").read_text() if (
        source / "include/tvm/runtime/base.h").is_file() else ""
    match = re.search(r'#define TVM_VERSION "([^"]+)"', text)
    version = match.group(1) if match else "unknown"
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=10", "HEAD"],
                            capture_output=True, text=True)
    return f"{version} ({commit.stdout.strip()})" if commit.returncode == 0 else version


@dataclass(frozen=True)
class TvmRuntime:
    """An installed TVM runtime a library is built for: its packages' folders."""

    arch: str
    site: Path  # the site-packages holding tvm/ and tvm_ffi/

    @property
    def lib_dir(self) -> Path:
        return self.site / "tvm" / "lib"

    @property
    def version(self) -> str:
        text = (self.site / "tvm" / "_version.py").read_text()
        match = re.search(r"""__version__\s*=\s*(?:version\s*=\s*)?['"]([^'"]+)""", text)
        return match.group(1) if match else "unknown"

    def include_dirs(self) -> list[Path]:
        return [self.site / "tvm" / "include", self.site / "tvm_ffi" / "include"]

    def link_args(self) -> list[str]:
        ffi = self.site / "tvm_ffi" / "lib"
        return [f"-L{self.lib_dir}", f"-L{ffi}", "-ltvm_runtime", "-ltvm_ffi", "-Wl,--no-undefined"]


def host_runtime() -> TvmRuntime:
    """This Python's TVM (the venv's)."""
    import tvm

    return TvmRuntime("x86_64", Path(tvm.__file__).resolve().parent.parent)


def board_runtime() -> TvmRuntime:
    """The aarch64 wheel installed in the virtual board (built when missing): the runtime a
    real board gets from ``pip install apache-tvm`` of the same version."""
    from .rootfs import ensure_board

    return TvmRuntime("aarch64", ensure_board() / "site")


def runtime_for(arch: str) -> TvmRuntime:
    if arch not in ARCHES:
        raise ValueError(f"unknown arch {arch!r}; valid choices: {', '.join(ARCHES)}")
    return host_runtime() if arch == "x86_64" else board_runtime()


def _compile(compiler: str, flags: list[str], source: Path, obj: Path) -> None:
    done = subprocess.run([compiler, *flags, "-c", str(source), "-o", str(obj)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{compiler} failed on {source}:\n{done.stderr[-3000:]}")


def build_runtime(source: Path, runtime: TvmRuntime, dest_dir: Path | None = None) -> Path:
    """Compile and link ``libtvm_runtime_opencl.so`` for ``runtime`` into ``dest_dir`` (default:
    next to its ``libtvm_runtime.so``), atomically. Returns the library's path."""
    compiler = COMPILERS[runtime.arch]
    if not shutil.which(compiler):
        raise ValueError(f"{compiler} is missing: install Debian's "
                         f"{'g++' if runtime.arch == 'x86_64' else 'g++-aarch64-linux-gnu'}")
    if not (CL_HEADERS / "cl.h").is_file():
        raise ValueError(f"OpenCL headers are missing ({CL_HEADERS}/cl.h): install Debian's "
                         "opencl-c-headers (make setup does)")
    dest_dir = Path(dest_dir or runtime.lib_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opencl-runtime-") as tmp:
        tmp = Path(tmp)
        shutil.copytree(CL_HEADERS, tmp / "include" / "CL")  # only CL/: no host headers leak
        # the runtime's own headers first: the library must match the ABI it loads into
        includes = [*runtime.include_dirs(), source / "include", tmp / "include"]
        flags = ["-std=c++17", "-O2", "-fPIC", "-DNDEBUG", "-fvisibility=hidden",
                 *(f"-I{d}" for d in includes)]
        objects = [tmp / f"{Path(s).stem}.o" for s in SOURCES]
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(lambda s, o: _compile(compiler, flags, source / s, o),
                          SOURCES, objects))
        with atomic_path(dest_dir / LIBRARY) as out:
            done = subprocess.run([compiler, "-shared", "-o", str(out), *map(str, objects),
                                   *runtime.link_args()], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"linking {LIBRARY} failed:\n{done.stderr[-3000:]}")
            if elf_machine(out) != runtime.arch:
                raise RuntimeError(f"{out} is {elf_machine(out)} code, expected {runtime.arch}")
    return dest_dir / LIBRARY


PROBE = """
import json, tvm
from tvm.backend.opencl import register_backend
register_backend()  # a runtime-only TVM (the board's) does not autoload backends
dev = tvm.opencl(0)
print(json.dumps({"exist": bool(dev.exist), "name": dev.device_name if dev.exist else None,
                  "max_threads_per_block": dev.max_threads_per_block if dev.exist else None}))
"""


def probe(runtime: TvmRuntime, env: dict | None = None) -> dict:
    """Load the installed library in a fresh interpreter of ``runtime``'s machine (the board's
    Python under qemu for aarch64) and ask for OpenCL device 0: ``{"exist", "name", ...}``."""
    if runtime.arch == "x86_64":
        cmd, env = [sys.executable, "-c", PROBE], {**os.environ, **(env or {})}
    else:
        from .rootfs import board_dir, board_env

        cmd, env = [str(board_dir() / "pyarm"), "-c", PROBE], {**board_env(board_dir()), **(env or {})}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"loading {LIBRARY} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


@dataclass
class RuntimeBuild:
    library: Path
    source: Path
    source_version: str
    runtime_version: str
    seconds: float
    device: dict | None = None  # the probe's answer (None: not probed)

    def describe(self) -> str:
        dev = self.device
        found = ("no probe" if dev is None else f"OpenCL device 0: {dev['name']}" if dev["exist"]
                 else "loads, but no OpenCL device here (install a driver or PoCL)")
        return (f"{self.library} built in {self.seconds:.0f} s from {self.source} (TVM "
                f"{self.source_version}) for TVM runtime {self.runtime_version}; {found}")


def make_runtime(arch: str, source: str | Path | None = None, output: str | Path | None = None,
                 git_url: str = TVM_GIT, git_ref: str | None = None,
                 check: bool = True) -> RuntimeBuild:
    """Find (or clone) the source, build for ``arch``, install next to its runtime (or into
    ``output``, a folder to copy to a real board), then prove it loads (unless ``output``)."""
    runtime = runtime_for(arch)
    tree = find_source(source) or clone_source(git_url, git_ref)
    version = source_version(tree)
    if not version.startswith(runtime.version.split(".post")[0]):
        logger.warning("TVM source %s and runtime %s differ: the ABI is checked by loading and "
                       "running, not assumed", version, runtime.version)
    start = time.perf_counter()
    library = build_runtime(tree, runtime, Path(output) if output else None)
    result = RuntimeBuild(library, tree, version, runtime.version, time.perf_counter() - start)
    if check and output is None:
        if arch == "aarch64":
            from .rootfs import ensure_opencl

            ensure_opencl()  # the board's PoCL, so the probe finds a device
        result.device = probe(runtime)
    return result
