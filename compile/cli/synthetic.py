"""``python -m compile synthetic``: a small synthetic keypoint set to try ``eval`` on."""

from __future__ import annotations

from compile.cli import fail, make_parser, positive_int, setup_logging


def main(argv: list[str]) -> int:
    from compile.model.zoo import DATASETS

    parser = make_parser("synthetic", "Write a small keypoint set of drawn people: JPEG images and "
                         "COCO-style annotations, to try 'make eval' on without a dataset (its "
                         "accuracy means nothing about a network).")
    parser.add_argument("folder", help="where the images/ folder and annotations.json go")
    parser.add_argument("--dataset", default="crowdpose", type=str.lower, choices=list(DATASETS))
    parser.add_argument("--images", type=positive_int, default=6, help="images to draw (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.eval.synthetic import keypoint_set

    try:
        images, annotations = keypoint_set(args.folder, args.dataset, args.images, args.seed)
    except (ValueError, OSError) as err:
        return fail(err)
    print(f"IMAGES={images} ANNOTATIONS={annotations}")
    return 0
