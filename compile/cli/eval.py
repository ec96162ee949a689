"""``python -m compile eval``: accuracy of a compiled artifact on a keypoint set (COCO or
CrowdPose metrics), on this machine or on a board, optionally beside the PyTorch model."""

from __future__ import annotations

from pathlib import Path

from compile.cli import add_tracker_args, fail, make_parser, positive_int, setup_logging


def main(argv: list[str]) -> int:
    parser = make_parser("eval", "Run an artifact over a keypoint dataset with the runtime's own "
                         "pipeline (letterbox, flip, grouping), write COCO keypoint results and "
                         "score them: CrowdPose with xtcocotools (AP, AR, AP easy/medium/hard), "
                         "COCO with pycocotools. The dataset is the artifact's.")
    parser.add_argument("--artifact", type=Path, required=True, help="artifact folder")
    parser.add_argument("--images", type=Path, required=True,
                        help="image folder (images are looked up by the annotations' file_name)")
    parser.add_argument("--annotations", type=Path, required=True,
                        help="the dataset's annotation JSON (e.g. crowdpose_test.json, "
                        "person_keypoints_val2017.json)")
    parser.add_argument("--output", type=Path, required=True,
                        help="folder for results.json, ground_truth.json, metrics.json, metrics.md")
    parser.add_argument("--flip", action="store_true", help="flip test (the paper's protocol)")
    parser.add_argument("--fast", action="store_true", help="group at H/2 (the artifact row only)")
    parser.add_argument("--max-images", type=positive_int, default=None,
                        help="evaluate the first N images by id")
    parser.add_argument("--reference", action="store_true",
                        help="also run the PyTorch model under valid.py's protocol (per-image "
                        "shape) and print both rows and their difference")
    parser.add_argument("--checkpoint", metavar="FILE", default=None,
                        help="checkpoint for --reference when it is not where the artifact "
                        "was built from")
    add_tracker_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.eval.evaluate import EvalArgs, evaluate

    try:
        report = evaluate(EvalArgs(
            artifact=args.artifact, images=args.images, annotations=args.annotations,
            output=args.output, checkpoint=args.checkpoint, flip=args.flip, fast=args.fast,
            max_images=args.max_images, tracker=args.tracker, key=args.key,
            reference=args.reference))
    except (ValueError, RuntimeError) as err:
        return fail(str(err))
    w = report.weights
    print(f"\n{report.dataset}: {report.images} images, {len(report.missing)} missing "
          f"(their people count as missed); {report.engine}; flip {report.options['flip']}, "
          f"fast {report.options['fast']}\n")
    print(report.table())
    print(f"\nwritten to {args.output}: metrics.json, metrics.md, results*.json, ground_truth.json")
    if w["source"] == "random":
        print(f"WARNING: SEEDED RANDOM WEIGHTS (seed {w['seed']}): these numbers say nothing about "
              "LitePose's accuracy; build with an official checkpoint for the paper's table")
    return 0
