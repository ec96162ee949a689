"""Load a compiled LitePose artifact (``model.so`` + ``metadata.json``) with ``tvm.runtime``."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .library import elf_machine, this_machine
from .meta import ArtifactMeta

logger = logging.getLogger(__name__)

CORE_MODES = {"default": 0, "big": 1, "little": -1}


def check_threads(threads: int = 0, cores: str = "default") -> None:
    """``ValueError`` naming the bad value unless ``threads >= 0`` and ``cores`` is a core set."""
    if cores not in CORE_MODES:
        raise ValueError(f"unknown core set {cores!r}; valid choices: {', '.join(CORE_MODES)}")
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")


def configure_threads(threads: int = 0, cores: str = "default") -> None:
    """Set the calling thread's TVM thread pool: ``threads`` workers (0: runtime default)
    pinned to ``cores`` ("big" or "little" on big.LITTLE boards, e.g. RK3399's A72 / A53).

    TVM's pool belongs to the thread that runs the VM: call this from the inference thread.
    TVM pins that thread when it makes the pool (to CPU 0 with one worker); with "default" the
    thread keeps the CPUs it had, so an application's thread (and every process it starts
    later, which inherits the mask) is not left on one core. "big" / "little" pin it on purpose.
    """
    import os

    check_threads(threads, cores)
    if threads:  # TVM caps its pool at TVM_NUM_THREADS, else the *physical* core count (1 on a
        os.environ["TVM_NUM_THREADS"] = str(threads)  # 2-vCPU VM): a larger request is ignored
    _config_pool(CORE_MODES[cores], threads, keep_affinity=cores == "default")


def configure_helper_thread() -> None:
    """Give the calling thread (one that runs merge functions beside the inference thread) a TVM
    pool of its own with no workers, so it computes on itself, keeping its CPU affinity
    (``TVM_NUM_THREADS`` is left as it is)."""
    _config_pool(CORE_MODES["default"], 1, keep_affinity=True)


def _config_pool(mode: int, threads: int, keep_affinity: bool) -> None:
    """``runtime.config_threadpool`` for the calling thread; undo the pin TVM puts on it when
    ``keep_affinity`` (Linux: elsewhere there is no affinity call to undo it with)."""
    import os

    import tvm

    cpus = os.sched_getaffinity(0) if keep_affinity and hasattr(os, "sched_getaffinity") else None
    tvm.get_global_func("runtime.config_threadpool")(mode, threads)
    if cpus is not None and os.sched_getaffinity(0) != cpus:
        os.sched_setaffinity(0, cpus)


OPENCL_RUNTIME = "libtvm_runtime_opencl.so"


def opencl_device(library: str | Path | None = None):
    """OpenCL device 0, loading TVM's OpenCL runtime first when it is not registered yet.

    The runtime is ``libtvm_runtime_opencl.so`` next to ``libtvm_runtime.so`` (where
    ``make opencl-runtime`` installs it), or ``library`` / ``$LITEPOSE_OPENCL_RUNTIME`` (a copy
    anywhere). ``RuntimeError`` naming the fix when it is missing or no device answers.
    """
    import os

    import tvm

    def registered() -> bool:
        return tvm.get_global_func("device_api.opencl", allow_missing=True) is not None

    if not registered():
        import ctypes

        from tvm.base import _LOADED_LIBS

        library = library or os.environ.get("LITEPOSE_OPENCL_RUNTIME")
        runtime_dir = Path(_LOADED_LIBS["tvm_runtime"]._name).resolve().parent
        path = Path(library) if library else runtime_dir / OPENCL_RUNTIME
        if not path.is_file():
            raise RuntimeError(
                f"this TVM runtime has no OpenCL support ({path} not found; the PyPI wheels ship "
                "none): build it with 'make opencl-runtime' (ARCH=aarch64 for a board) and copy "
                f"it next to {runtime_dir / 'libtvm_runtime.so'}, or set LITEPOSE_OPENCL_RUNTIME")
        _LOADED_LIBS["tvm_runtime_opencl"] = ctypes.CDLL(str(path), ctypes.RTLD_LOCAL)
        if not registered():
            raise RuntimeError(f"{path} loaded but registered no OpenCL device API: it was "
                               "built for another TVM runtime; rebuild it with 'make opencl-runtime'")
    device = tvm.opencl(0)
    if not device.exist:
        raise RuntimeError("no OpenCL device: install the GPU's OpenCL driver (RK3399: ARM's libmali; "
                           "a CPU: pocl-opencl-icd) and make sure "
                           "'libOpenCL.so' can be loaded (Debian: ocl-icd-opencl-dev)")
    return device


class Maps(NamedTuple):
    """Grouping input from the library: heatmaps (J, h, w), tags (J, h, w, L) float32, and
    the network's raw outputs for the image when asked for (``--save-raw``)."""

    heatmaps: np.ndarray
    tags: np.ndarray
    raw: tuple[np.ndarray, np.ndarray] | None = None


class Artifact:
    """A loaded artifact: ``infer(x)`` runs the network on a ``(1, 3, H, W)`` float32 image."""

    def __init__(self, folder: str | Path):
        import tvm

        self.folder = Path(folder)
        self.meta = meta = ArtifactMeta.read(self.folder)
        library = meta.library_path(self.folder)  # confined, whole, the digest it was built with
        built_for, here = elf_machine(library), this_machine()
        if built_for != here:
            raise ValueError(f"{library} was built for target {meta.target.name} ({built_for} "
                             f"code); this machine is {here}: run it on a {built_for} board, or "
                             "build for this machine's target with 'python -m compile build'")
        if meta.tvm_version != tvm.__version__:
            logger.warning("%s was built with TVM %s; this runtime is TVM %s", library,
                           meta.tvm_version, tvm.__version__)
        self.device = opencl_device() if meta.target.device == "opencl" else tvm.cpu(0)
        self._tvm = tvm
        try:
            self._module = tvm.runtime.load_module(str(library))
            self.vm = self.new_vm()
        except Exception as err:  # TVM raises its own error types
            raise ValueError(f"cannot load {library} on this machine ({meta.target.device}, built "
                             f"for {meta.target.name}): {err}") from err
        self._local = threading.local()  # each merging thread's own VM (a VM is not thread-safe)
        self._checked: set = set()
        logger.debug("loaded %s", meta.describe())

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The bare network: image (1, 3, H, W) float32 -> (out0 (1, 2J, H/4, W/4), out1 (1, J,
        H/2, W/2))."""
        outputs = self._network(image)
        result = self._host(outputs[0]), self._host(outputs[1])
        self._check(tuple(r.shape for r in result), tuple(o.shape for o in self.meta.outputs))
        return result

    def infer_maps(self, image: np.ndarray, flip: bool = False, fast: bool = False,
                   keep_raw: bool = False) -> Maps:
        """Network and merge in the library (one network pass, two with ``flip``): grouping
        input ready for :func:`kernels.group`. ``ValueError`` when the artifact has no merge
        function for these options (schema 2: use :meth:`infer` and merge on the CPU)."""
        return self.merge(self.passes(image, flip), flip, fast, keep_raw)

    def passes(self, image: np.ndarray, flip: bool = False) -> tuple:
        """The network's outputs as library tensors, for :meth:`merge`: ``(out0, out1)`` for the
        image, then (``flip``) for its mirror."""
        first = tuple(self._network(image))
        if not flip:
            return first
        return first + tuple(self._network(np.ascontiguousarray(image[:, :, :, ::-1])))

    def merge(self, passes: tuple, flip: bool = False, fast: bool = False,
              keep_raw: bool = False) -> Maps:
        """The library's merge function for these options on :meth:`passes`; any thread may
        call it (each gets a VM of its own over the loaded library)."""
        spec = self.meta.merge_for(flip, fast)
        if spec is None:
            raise ValueError(f"{self.folder} has no merge function for flip={flip}, fast={fast}")
        if len(passes) != spec.inputs:
            raise ValueError(f"{spec.function} takes {spec.inputs} network outputs, got {len(passes)}")
        vm = getattr(self._local, "vm", None)
        if vm is None:
            vm = self._local.vm = self.new_vm()
        heat, tags = (self._host(t) for t in vm[spec.function](*passes))
        self._check((heat.shape, tags.shape), (spec.heatmaps, spec.tags))
        raw = (self._host(passes[0]), self._host(passes[1])) if keep_raw else None
        return Maps(heat, tags, raw)

    def new_vm(self):
        """Another VM over the loaded library (a VM is not thread-safe; each has its own
        instrument hook)."""
        from tvm.runtime.vm import VirtualMachine

        return VirtualMachine(self._module, self.device)

    def device_tensor(self, image: np.ndarray):
        """``image`` checked against the artifact's input shape, as a tensor on its device."""
        expected = self.meta.input.shape
        if image.shape != expected:
            raise ValueError(f"input shape {image.shape} does not match the artifact's {expected}")
        return self._tvm.runtime.tensor(image, self.device)

    def _network(self, image: np.ndarray):
        return self.vm[self.meta.network](self.device_tensor(image))

    def _host(self, tensor) -> np.ndarray:
        """A VM output as numpy: on the CPU the same memory (DLPack; the array keeps the VM's
        buffer alive, and the VM allocates new outputs each call), else a copy to the host."""
        return np.from_dlpack(tensor) if self.device.dlpack_device_type() == 1 else tensor.numpy()

    def _check(self, got: tuple, want: tuple) -> None:
        """The library keeps the contract its metadata states (checked once per function)."""
        if want in self._checked:
            return
        if tuple(got) != tuple(tuple(w) for w in want):
            raise ValueError(f"{self.folder}: the library returns shapes {got}, its metadata "
                             f"says {want}: rebuild the artifact")
        self._checked.add(want)
