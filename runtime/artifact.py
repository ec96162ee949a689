"""Load a compiled LitePose artifact (``model.so`` + ``metadata.json``) with ``tvm.runtime``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SUPPORTED_SCHEMA = 1
REQUIRED_KEYS = ("schema_version", "library", "input", "outputs", "num_joints", "keypoints",
                 "flip_index", "skeleton", "joint_order", "target", "weights")
CORE_MODES = {"default": 0, "big": 1, "little": -1}


@dataclass(frozen=True)
class Metadata:
    """The parts of ``metadata.json`` the runtime uses."""

    raw: dict

    @property
    def input_hw(self) -> tuple[int, int]:
        _, _, h, w = self.raw["input"]["shape"]
        return h, w

    @property
    def num_joints(self) -> int:
        return self.raw["num_joints"]

    @property
    def random_weights(self) -> bool:
        return self.raw["weights"]["source"] == "random"

    def __getitem__(self, key: str):
        return self.raw[key]


def read_metadata(folder: str | Path) -> Metadata:
    """Read and check ``folder/metadata.json`` (standard library only)."""
    path = Path(folder) / "metadata.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not a LitePose artifact folder: {path.name} is missing "
                         "(build one with 'python -m compile build')")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    if raw["schema_version"] != SUPPORTED_SCHEMA:
        raise ValueError(f"{path} has schema version {raw['schema_version']}; this runtime reads "
                         f"version {SUPPORTED_SCHEMA}: rebuild the artifact")
    return Metadata(raw)


def check_threads(threads: int = 0, cores: str = "default") -> None:
    """``ValueError`` naming the bad value unless ``threads >= 0`` and ``cores`` is a core set."""
    if cores not in CORE_MODES:
        raise ValueError(f"unknown core set {cores!r}; valid choices: {', '.join(CORE_MODES)}")
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")


def configure_threads(threads: int = 0, cores: str = "default") -> None:
    """Set the calling thread's TVM thread pool: ``threads`` workers (0: runtime default)
    pinned to ``cores`` ("big" or "little" on big.LITTLE boards, e.g. RK3399's A72 / A53).

    TVM's pool belongs to the thread that runs the VM, and TVM may pin that thread: call this
    from the inference thread.
    """
    import os

    import tvm

    check_threads(threads, cores)
    if threads:  # TVM caps its pool at TVM_NUM_THREADS, else the *physical* core count (1 on a
        os.environ["TVM_NUM_THREADS"] = str(threads)  # 2-vCPU VM): a larger request is ignored
    tvm.get_global_func("runtime.config_threadpool")(CORE_MODES[cores], threads)


class Artifact:
    """A loaded artifact: ``infer(x)`` runs the network on a ``(1, 3, H, W)`` float32 image."""

    def __init__(self, folder: str | Path):
        import tvm
        from tvm.runtime.vm import VirtualMachine

        self.folder = Path(folder)
        self.meta = read_metadata(self.folder)
        library = self.folder / self.meta["library"]
        if not library.is_file():
            raise ValueError(f"artifact library {library} is missing")
        device = self.meta["target"].get("device", "cpu")
        self.device = tvm.opencl(0) if device == "opencl" else tvm.cpu(0)
        self._tvm = tvm
        try:
            self.vm = VirtualMachine(tvm.runtime.load_module(str(library)), self.device)
        except Exception as err:  # TVM raises its own error types
            raise ValueError(f"cannot load {library} on this machine ({device}, built for "
                             f"{self.meta['target']['name']}): {err}") from err
        logger.debug("loaded %s for %s", library, self.meta["target"]["name"])

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image (1, 3, H, W) float32 -> (out0 (1, 2J, H/4, W/4), out1 (1, J, H/2, W/2))."""
        expected = tuple(self.meta["input"]["shape"])
        if image.shape != expected:
            raise ValueError(f"input shape {image.shape} does not match the artifact's {expected}")
        outputs = self.vm["main"](self._tvm.runtime.tensor(image, self.device))
        return outputs[0].numpy(), outputs[1].numpy()
