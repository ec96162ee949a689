"""The PyTorch reference of an artifact: its own weights rebuilt on the host (digest-checked),
their outputs for a fixed input, and the reference merge of those outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compile.model.zoo import get_dataset, get_model
from runtime.meta import ArtifactMeta


def load_reference(meta: ArtifactMeta, checkpoint: str | Path | None = None):
    """The PyTorch model of the artifact's own weights (``checkpoint`` overrides the path the
    metadata records); ``ValueError`` when the weights' digest differs from the artifact's."""
    from .importer import load_model

    weights = meta.weights
    loaded = load_model(get_model(meta.model), get_dataset(meta.dataset),
                        checkpoint or weights.path, weights.seed or 0)
    if loaded.weights.sha256 != weights.sha256:
        raise ValueError("the host cannot rebuild the artifact's weights (digest differs); "
                         "pass the checkpoint it was built with")
    return loaded


def host_reference(meta: ArtifactMeta, seed: int = 7) -> tuple[np.ndarray, list[np.ndarray]]:
    """The fixed input and the PyTorch outputs of the artifact's own weights."""
    import torch

    from .importer import example_input

    loaded = load_reference(meta)
    x = example_input(meta.input_hw, seed=seed)
    with torch.no_grad():
        return x.numpy(), [o.numpy() for o in loaded.model(x)]


def reference_maps(meta: ArtifactMeta, x: np.ndarray, refs: list[np.ndarray]) -> dict:
    """Merge function name -> the reference merge (:func:`compile.frontend.merge.reference_merge`)
    of the PyTorch outputs ``refs`` for ``x`` (and for its mirror, run here, with flip test)."""
    import torch

    from .merge import reference_merge

    if not meta.merges:
        return {}
    mirrored = np.ascontiguousarray(x[:, :, :, ::-1])
    with torch.no_grad():
        flipped = [o.numpy() for o in load_reference(meta).model(torch.from_numpy(mirrored))]
    flip_index = tuple(get_dataset(meta.dataset).flip_index)
    return {m.function: reference_merge([refs, flipped] if m.flip else [refs], meta.input_hw,
                                        meta.num_joints, flip_index, fast=m.fast)
            for m in meta.merges}
