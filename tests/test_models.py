"""Model zoo: parameter counts, output shapes, state_dict keys, registries, MACs."""

from __future__ import annotations

import pytest
import torch

from compile.model.info import model_stats
from compile.model.litepose import LitePose
from compile.model.zoo import DATASETS, MODELS, get_dataset, get_model, parse_input_size
from tests.conftest import REFERENCE

pytestmark = pytest.mark.unit

PARAMS = {("xs", 14): 1_675_552, ("s", 14): 2_731_240, ("m", 14): 3_533_808, ("l", 14): 5_738_120,
          ("xs", 17): 1_675_912, ("s", 17): 2_731_624, ("m", 17): 3_534_336, ("l", 17): 5_738_672}
MACS = {"xs": (0.883, 1.202), "s": (3.614, 4.981), "m": (5.264, 7.842), "l": (9.962, 13.713)}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_params_and_output_shapes(model, dataset):
    spec, ds = MODELS[model], DATASETS[dataset]
    net = LitePose(spec.arch(), ds.num_joints).eval()
    assert sum(p.numel() for p in net.parameters()) == PARAMS[model, ds.num_joints]
    s = spec.input_size
    with torch.no_grad():
        out0, out1 = net(torch.zeros(1, 3, s, s))
    j = ds.num_joints
    assert tuple(out0.shape) == (1, 2 * j, s // 4, s // 4)
    assert tuple(out1.shape) == (1, j, s // 2, s // 2)


@pytest.mark.parametrize("model", list(MODELS))
def test_state_dict_matches_reference(model):
    ref = []
    for line in (REFERENCE / f"litepose-state-dict-{model.upper()}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split(" ", 1)
            ref.append((key, shape.replace(" ", "")))
    net = LitePose(MODELS[model].arch(), 14)
    ours = [(k, str(list(v.shape)).replace(" ", "")) for k, v in net.state_dict().items()]
    assert len(ours) == 679
    assert ours == ref


@pytest.mark.parametrize("model", list(MODELS))
def test_macs_match_the_paper_convention(model):
    spec = MODELS[model]
    st = model_stats(spec, DATASETS["crowdpose"], (spec.input_size, spec.input_size))
    assert round(st.true_macs / 1e9, 3) == MACS[model][0]
    assert round(st.ptflops_macs / 1e9, 3) == MACS[model][1]


def test_registries_reject_unknown_names_listing_choices():
    with pytest.raises(ValueError, match=r"unknown model 'xxl'.*xs, s, m, l"):
        get_model("xxl")
    with pytest.raises(ValueError, match=r"unknown dataset 'mpii'.*crowdpose, coco"):
        get_dataset("mpii")


def test_dataset_tables_are_consistent():
    for ds in DATASETS.values():
        j = ds.num_joints
        assert sorted(ds.flip_index) == list(range(j))
        assert all(ds.flip_index[ds.flip_index[i]] == i for i in range(j))
        assert sorted(ds.joint_order) == list(range(j))
        assert all(0 <= a < j and 0 <= b < j for a, b in ds.skeleton)
    assert len(DATASETS["crowdpose"].skeleton) == 15
    assert len(DATASETS["coco"].skeleton) == 19


@pytest.mark.parametrize("text,expected", [(None, (256, 256)), ("320x256", (320, 256)),
                                           ("192", (192, 192))])
def test_input_size_parsing(text, expected):
    assert parse_input_size(text, 256) == expected


@pytest.mark.parametrize("text", ["250x256", "256x100", "0x0", "abc", "1x2x3"])
def test_input_size_rejects_bad_values(text):
    with pytest.raises(ValueError, match=text if "x" in text and text != "1x2x3" else "HxW"):
        parse_input_size(text, 256)
