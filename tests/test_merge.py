"""The heads' merge compiled into the artifact (compile/frontend/merge.py) equals the spec's merge."""

from __future__ import annotations

import numpy as np
import pytest

from compile.frontend.merge import VARIANTS, merge_functions, merge_spec, reference_merge
from runtime.meta import ArtifactMeta

FLIP14 = (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)
FLIP17 = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)


@pytest.mark.compile
@pytest.mark.parametrize(("flip_index", "size"), [(FLIP14, (64, 96)), (FLIP17, (80, 48))])
def test_compiled_merge_equals_the_reference_merge(flip_index, size):
    import tvm
    from tvm import relax

    j = len(flip_index)
    h, w = size
    mod = merge_functions(j, size, flip_index)
    with tvm.target.Target("llvm"):
        mod = relax.get_pipeline("zero")(mod)
    vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
    rng = np.random.default_rng(j)
    passes = [(rng.standard_normal((1, 2 * j, h // 4, w // 4)).astype(np.float32),
               rng.standard_normal((1, j, h // 2, w // 2)).astype(np.float32)) for _ in range(2)]
    for variant in VARIANTS:
        outs = passes[:2 if variant.flip else 1]
        heat, tags = (t.numpy() for t in vm[variant.name](*[a for pair in outs for a in pair]))
        ref_heat, ref_tags = reference_merge(outs, size, j, flip_index, variant.fast)
        spec = merge_spec(variant, j, size)
        assert heat.shape == spec.heatmaps == ref_heat.shape, variant
        assert tags.shape == spec.tags == ref_tags.shape, variant
        np.testing.assert_allclose(heat, ref_heat, atol=2e-6)
        np.testing.assert_allclose(tags, ref_tags, atol=2e-6)


@pytest.mark.unit
def test_a_schema_2_artifact_reads_without_merge_functions():
    """Schema 2 metadata (no merge functions) keeps working: the runtime merges on the CPU."""
    from tests.test_meta import sample

    raw = sample().to_dict()
    raw["schema_version"] = 2
    raw.pop("merges")
    raw.pop("network")
    meta = ArtifactMeta.from_dict(raw)
    assert meta.merges == () and meta.merge_for(False, False) is None and meta.network == "main"
