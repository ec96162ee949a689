"""An artifact on a board from an RPC tracker: checked before it leaves, uploaded, loaded and
driven like :class:`runtime.artifact.Artifact` (deploy and eval both run it this way)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compile.targets import get_target
from runtime.artifact import Maps
from runtime.library import elf_machine
from runtime.meta import ArtifactMeta

from .tracker import Tracker, request_board


def check_artifact(folder: Path, target: str) -> ArtifactMeta:
    """Metadata of ``folder``; refuse (before any upload) a library for another machine."""
    preset = get_target(target)
    meta = ArtifactMeta.read(folder)
    library = meta.library_path(folder)  # confined, whole, the digest it was built with
    machine = elf_machine(library)
    if machine != preset.arch:
        raise ValueError(f"{library} is an {machine} library but target {target} runs {preset.arch} "
                         f"code; rebuild with 'python -m compile build --target {target}'")
    if meta.target.name != target:
        raise ValueError(f"{folder} was built for {meta.target.name}, not {target}")
    return meta


def is_virtual_board(tracker: Tracker) -> bool:
    """True when ``tracker`` is the one the virtual (qemu) board of this machine registered at."""
    from .virtual import read_state

    state = read_state()
    return bool(state and state.tracker_port == tracker.port
                and tracker.key in (state.key, state.opencl_key)
                and tracker.host in ("127.0.0.1", "localhost"))


class RemoteArtifact:
    """An artifact uploaded to a board from the tracker and loaded there: ``meta`` and
    ``infer`` as :class:`runtime.artifact.Artifact`, so the runtime's pipeline can drive it."""

    def __init__(self, tracker: Tracker, folder: Path, meta: ArtifactMeta, session_timeout: int = 600):
        import tvm
        from tvm.runtime.vm import VirtualMachine

        self.folder, self.meta, self._tvm = Path(folder), meta, tvm
        self.remote, _ = request_board(tracker, priority=1, session_timeout=session_timeout)
        self.remote.upload(str(meta.library_path(self.folder)))  # checked before it leaves
        lib = self.remote.load_module(meta.library)
        self.device = self.remote.cl(0) if meta.target.device == "opencl" else self.remote.cpu(0)
        self.vm = VirtualMachine(lib, self.device)

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image (1, 3, H, W) float32 -> the network's two outputs, run on the board."""
        out0, out1 = (o.numpy() for o in self._network(image))
        return out0, out1

    def infer_maps(self, image: np.ndarray, flip: bool = False, fast: bool = False,
                   keep_raw: bool = False) -> Maps:
        """As :meth:`runtime.artifact.Artifact.infer_maps`, on the board: the network's outputs
        stay there and feed the library's merge function; only the maps come back."""
        spec = self.meta.merge_for(flip, fast)
        if spec is None:
            raise ValueError(f"{self.folder} has no merge function for flip={flip}, fast={fast}")
        first = self._network(image)
        args = list(first)
        if flip:
            args += list(self._network(np.ascontiguousarray(image[:, :, :, ::-1])))
        heat, tags = (t.numpy() for t in self._call(spec.function, *args))
        if (heat.shape, tags.shape) != (spec.heatmaps, spec.tags):
            raise ValueError(f"{self.folder}: {spec.function} returned {heat.shape}, {tags.shape}; "
                             f"its metadata says {spec.heatmaps}, {spec.tags}: rebuild the artifact")
        raw = (first[0].numpy(), first[1].numpy()) if keep_raw else None
        return Maps(heat, tags, raw)

    def _network(self, image: np.ndarray):
        if image.shape != self.meta.input.shape:
            raise ValueError(f"input shape {image.shape} does not match the artifact's "
                             f"{self.meta.input.shape}")
        return self._call(self.meta.network, self._tvm.runtime.tensor(image, self.device))

    def _call(self, function: str, *args):
        """One VM function on the board (RPC: set_input / invoke_stateful / get_outputs)."""
        self.vm.set_input(function, *args)
        self.vm.invoke_stateful(function)
        return list(self.vm.get_outputs(function))

    def time(self, repeat: int) -> list[float]:
        """Seconds of ``repeat`` runs of the last input, timed on the board."""
        timer = self.vm.time_evaluator("invoke_stateful", self.device, number=1, repeat=repeat)
        return list(timer(self.meta.network).results)
