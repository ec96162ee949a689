"""Accuracy evaluation: the metrics against OKS arithmetic and the reference libraries, the
evaluation flow with a perfect network, bad inputs, and ``python -m compile eval`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compile.eval.evaluate import EvalArgs, evaluate, reference_size
from compile.eval.metrics import PROTOCOLS, evaluate_files, evaluate_results, load_keypoint_set
from compile.eval.synthetic import keypoint_set
from tests.conftest import run_cli
from tests.oracle import OracleEngine, oracle_meta

JOINTS = {"crowdpose": 14, "coco": 17}


@pytest.fixture(params=["crowdpose", "coco"])
def dataset(request, tmp_path):
    """(name, KeypointSet, folder) of a synthetic set in that dataset's format."""
    name = request.param
    _, ann = keypoint_set(tmp_path / "set", name, n_images=6)
    return name, load_keypoint_set(ann, name, JOINTS[name]), tmp_path


def as_results(keypoints, shift=None, score=1.0) -> list[dict]:
    out = []
    for a in keypoints.data["annotations"]:
        k = np.array(a["keypoints"], float).reshape(-1, 3)
        if shift is not None:
            k[:, 0] += shift(a)
        out.append({"image_id": a["image_id"], "category_id": 1, "score": score,
                    "keypoints": k.ravel().tolist()})
    return out


@pytest.mark.unit
def test_the_ground_truth_scores_one(dataset):
    name, ks, folder = dataset
    ids = [im["id"] for im in ks.images]
    metrics = evaluate_results(ks, ids, as_results(ks), folder, "results")
    assert list(metrics) == list(PROTOCOLS[name].stats)
    assert all(v == pytest.approx(1.0) for v in metrics.values()), metrics


@pytest.mark.unit
@pytest.mark.parametrize("oks, ap", [(0.72, 0.5), (0.93, 0.9), (0.48, 0.0)])
def test_known_displacements_lower_ap_as_oks_predicts(dataset, oks, ap):
    """Every joint moved so that exp(-d^2 / (2 A (2 sigma)^2)) = OKS: a person then matches
    at the IoU thresholds 0.50:0.05:0.95 up to OKS, so AP = (their count) / 10."""
    name, ks, folder = dataset
    proto = PROTOCOLS[name]
    sigmas = np.array(proto.sigmas)

    def shift(ann):
        area = ann["area"] if proto.use_area else 0.53 * ann["bbox"][2] * ann["bbox"][3]
        return np.sqrt(-2 * area * (2 * sigmas) ** 2 * np.log(oks))

    ids = [im["id"] for im in ks.images]
    m = evaluate_results(ks, ids, as_results(ks, shift), folder, "results")
    assert m["AP"] == pytest.approx(ap) and m["AR"] == pytest.approx(ap)
    assert m["AP50"] == (1.0 if oks >= 0.5 else 0.0) and m["AP75"] == (1.0 if oks >= 0.75 else 0.0)


def direct(name: str, gt: Path, res: Path) -> np.ndarray:
    """The reference library called the documented way, outside the kit."""
    if name == "crowdpose":
        from xtcocotools.coco import COCO
        from xtcocotools.cocoeval import COCOeval

        coco = COCO(str(gt))
        ev = COCOeval(coco, coco.loadRes(str(res)), "keypoints_crowd",
                      np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89,
                                .79, .79]) / 10, use_area=False)
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        coco = COCO(str(gt))
        ev = COCOeval(coco, coco.loadRes(str(res)), "keypoints")  # COCO's own sigmas
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


@pytest.mark.unit
def test_metrics_equal_the_reference_libraries(dataset):
    """Noisy, re-scored results plus false positives: the kit equals a direct call to 1e-6."""
    name, ks, folder = dataset
    rng = np.random.default_rng(3)
    res = as_results(ks, shift=lambda a: rng.normal(0, 4, JOINTS[name]))
    for r in res:
        r["score"] = float(rng.uniform(0.2, 1))
    res += [{**r, "keypoints": (np.array(r["keypoints"]) + 40).tolist(), "score": 0.3}
            for r in res[::3]]
    ids = [im["id"] for im in ks.images]
    kit = evaluate_results(ks, ids, res, folder, "results")
    ref = direct(name, folder / "ground_truth.json", folder / "results.json")
    assert np.allclose(list(kit.values()), ref, atol=1e-6, rtol=0)
    assert 0.05 < kit["AP"] < 0.95  # neither trivial end


@pytest.mark.unit
def test_no_detections_score_zero(dataset):
    _, ks, folder = dataset
    m = evaluate_results(ks, [im["id"] for im in ks.images], [], folder, "results")
    assert all(v == 0.0 for v in m.values())


@pytest.mark.unit
def test_reference_size_is_valid_py_rounding():
    assert reference_size((480, 640), 256) == (256, 384)  # spec 3.2's example
    assert reference_size((640, 480), 256) == (384, 256)
    assert reference_size((300, 300), 256) == (256, 256)
    assert reference_size((333, 500), 448) == (448, 704)


@pytest.mark.unit
def test_a_perfect_network_scores_high_and_a_missing_image_counts(dataset):
    """The whole flow (letterbox, grouping, mapping back, results, metrics) with a network that
    outputs the ground truth's own maps: high AP; the same with one image deleted loses that
    image's people from the recall instead of dropping them from the denominator."""
    name, ks, folder = dataset
    meta = oracle_meta(name)
    (folder / "artifact").mkdir()
    meta.write(folder / "artifact")
    people = [np.array([np.reshape(a["keypoints"], (-1, 3)) for a in ks.data["annotations"]
                        if a["image_id"] == im["id"]]) for im in ks.images]
    args = EvalArgs(artifact=folder / "artifact", images=folder / "set" / "images",
                    annotations=ks.path, output=folder / "out")
    full = evaluate(args, progress=False, engine=OracleEngine(meta, ks.images, people))
    assert full.rows["artifact"]["AP"] > 0.95 and full.rows["artifact"]["AR"] > 0.95, full.rows
    assert not full.missing
    gone = ks.images[1]
    (folder / "set" / "images" / gone["file_name"]).unlink()
    kept = [(im, p) for im, p in zip(ks.images, people, strict=True) if im is not gone]
    part = evaluate(args, progress=False, engine=OracleEngine(meta, *map(list, zip(*kept, strict=True))))
    share = sum(a["image_id"] == gone["id"] for a in ks.data["annotations"]) / len(ks.data["annotations"])
    assert part.missing == [gone["file_name"]] and part.images == len(ks.images)
    assert part.rows["artifact"]["AR"] == pytest.approx(full.rows["artifact"]["AR"] * (1 - share), abs=0.05)
    saved = json.loads((folder / "out" / "metrics.json").read_text())
    assert saved["missing_images"] == [gone["file_name"]]
    assert len(json.loads((folder / "out" / "ground_truth.json").read_text())["images"]) == len(ks.images)


@pytest.mark.unit
def test_the_synthetic_cli_writes_a_set_that_loads(tmp_path):
    """``python -m compile synthetic``: the set a README reader tries eval on, in COCO format."""
    res = run_cli("-m", "compile", "synthetic", str(tmp_path / "set"), "--dataset", "coco",
                  "--images", "3")
    assert res.returncode == 0, res.stderr
    images, ann = (Path(v.split("=", 1)[1]) for v in res.stdout.split())
    ks = load_keypoint_set(ann, "coco", 17)
    assert len(ks.images) == 3 and sorted(p.name for p in images.iterdir()) == sorted(
        im["file_name"] for im in ks.images)
    bad = run_cli("-m", "compile", "synthetic", str(tmp_path / "x"), "--dataset", "mpii")
    assert bad.returncode == 2 and "'mpii'" in bad.stderr and "crowdpose" in bad.stderr


@pytest.mark.unit
def test_bad_annotations_get_clear_errors(tmp_path):
    _, ann = keypoint_set(tmp_path / "coco", "coco", n_images=2)
    with pytest.raises(ValueError, match=r"17 joints \(COCO's count\).*predicts 14 \(crowdpose\)"):
        load_keypoint_set(ann, "crowdpose", 14)
    data = json.loads(ann.read_text())
    for change, message in [({"images": []}, "lists no images"),
                            ({"annotations": None}, "no annotations list")]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**data, **change}))
        with pytest.raises(ValueError, match=message):
            load_keypoint_set(bad, "coco", 17)
    _, crowd = keypoint_set(tmp_path / "crowd", "crowdpose", n_images=2)
    data = json.loads(crowd.read_text())
    del data["images"][0]["crowdIndex"]
    crowd.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no crowdIndex"):
        load_keypoint_set(crowd, "crowdpose", 14)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        load_keypoint_set(tmp_path / "x.json", "coco", 17)
    with pytest.raises(ValueError, match="does not exist"):
        load_keypoint_set(tmp_path / "nope.json", "coco", 17)


@pytest.mark.unit
def test_the_direct_call_agrees_on_files_written_by_hand(tmp_path):
    """evaluate_files reads any results file (as the CLI writes it)."""
    _, ann = keypoint_set(tmp_path, "crowdpose", n_images=3)
    ks = load_keypoint_set(ann, "crowdpose", 14)
    (tmp_path / "r.json").write_text(json.dumps(as_results(ks)))
    assert evaluate_files("crowdpose", ann, tmp_path / "r.json")["AP"] == pytest.approx(1.0)


@pytest.mark.compile
def test_eval_cli_end_to_end_on_a_host_artifact(xs_host_artifact, tmp_path):
    """Random weights through the real library, with --reference, --flip, a missing image and
    --max-images; every file is written and the metrics equal a direct library call."""
    images, ann = keypoint_set(tmp_path / "set", "crowdpose", n_images=4)
    (images / "1001.jpg").unlink()
    out = tmp_path / "out"
    res = run_cli("-m", "compile", "eval", "--artifact", str(xs_host_artifact), "--images",
                  str(images), "--annotations", str(ann), "--output", str(out), "--flip",
                  "--reference", "--max-images", "3")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "| compiled (letterbox) |" in res.stdout and "| PyTorch (valid.py) |" in res.stdout
    assert "3 images, 1 missing" in res.stdout and "SEEDED RANDOM WEIGHTS" in res.stdout
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["missing_images"] == ["1001.jpg"] and saved["images"] == 3
    assert set(saved["metrics"]) == {"artifact", "pytorch"} and saved["difference"] is not None
    assert len(json.loads((out / "results.json").read_text())) > 0  # random nets find "people"
    for name, file in (("artifact", "results.json"), ("pytorch", "results-pytorch.json")):
        ref = direct("crowdpose", out / "ground_truth.json", out / file)
        assert np.allclose(list(saved["metrics"][name].values()), ref, atol=1e-6, rtol=0)
    assert (out / "metrics.md").read_text().startswith("| | AP | AP50")


@pytest.mark.unit
def test_eval_cli_usage_errors(tmp_path):
    res = run_cli("-m", "compile", "eval", "--artifact", str(tmp_path), "--images", str(tmp_path),
                  "--annotations", str(tmp_path / "a.json"), "--output", str(tmp_path),
                  "--max-images", "0")
    assert res.returncode == 2 and "--max-images: must be >= 1, got 0" in res.stderr
    res = run_cli("-m", "compile", "eval", "--artifact", str(tmp_path), "--images", str(tmp_path),
                  "--annotations", str(tmp_path / "a.json"), "--output", str(tmp_path / "o"))
    assert res.returncode == 2 and "metadata.json" in res.stderr
