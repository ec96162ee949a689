"""``python -m compile demo``: build for a board, start the virtual board, deploy, run.py there."""

from __future__ import annotations

from pathlib import Path

from compile.cli import fail, make_parser, setup_logging


def main(argv: list[str]) -> int:
    from compile.demo import BOARD_TARGETS, SAMPLE_IMAGE, DemoArgs, demo
    from compile.model.zoo import MODELS

    parser = make_parser("demo", "The kit's main job on the embedded defaults: build LitePose for "
                         "an ARM board with the committed schedules, start the virtual aarch64 "
                         "board, deploy with the parity verdict, and run runtime/run.py inside the "
                         "board on a sample photo.")
    parser.add_argument("--model", default="xs", type=str.lower, choices=list(MODELS))
    parser.add_argument("--target", default="rk3399", choices=list(BOARD_TARGETS))
    parser.add_argument("--checkpoint", metavar="FILE", type=Path, default=None,
                        help="official LitePose checkpoint (default: seeded random weights)")
    parser.add_argument("--image", type=Path, default=SAMPLE_IMAGE,
                        help="image to run on the board (default: assets/people.jpg)")
    parser.add_argument("--output", type=Path, default=Path("build/demo"),
                        help="folder for the board's rendered image and JSON")
    parser.add_argument("--port", type=int, default=9190, help="the board's tracker port")
    parser.add_argument("--keep-board", action="store_true",
                        help="leave the virtual board running afterwards ('make board-stop')")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        res = demo(DemoArgs(model=args.model, target=args.target, checkpoint=args.checkpoint,
                            image=args.image, output=args.output.resolve(), port=args.port,
                            keep_board=args.keep_board))
    except (ValueError, RuntimeError, TimeoutError) as err:
        return fail(str(err))
    print(f"\nverdict   {res.verdict} (board outputs vs PyTorch on this machine)")
    for path in res.rendered:
        print(f"rendered  {path}")
    print(f"json      {res.results_json}")
    print("time      " + ", ".join(f"{k} {v:.0f} s" for k, v in res.seconds.items()))
    if res.random_weights:
        print("WARNING: RANDOM WEIGHTS - the detections are meaningless; give CHECKPOINT=<official "
              "LitePose .pth> for real ones (the flow, parity and timings are real)")
    return 0 if res.verdict == "PASS" else 1
