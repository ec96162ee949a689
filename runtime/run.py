#!/usr/bin/env python3
"""Run a compiled LitePose artifact on images, folders, videos, cameras or streams.

    python runtime/run.py --model build/xs-host --input photo.jpg --output out/
    python runtime/run.py --model build/xs-host --input walk.mp4 --output out/ --smooth

A command line over ``runtime.PoseEstimator`` (runtime/api.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the checkout, not runtime/, leads sys.path
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import argparse
import logging
import signal
import threading
from contextlib import contextmanager

from runtime import __version__
from runtime.argtypes import non_negative_float, positive_float, positive_int, unit_float
from runtime.artifact import CORE_MODES
from runtime.postprocess import DecodeConfig
from runtime.smoothing import OneEuroConfig
from runtime.tracking import TrackerConfig

logger = logging.getLogger("runtime.run")
RANDOM_BANNER = "RANDOM WEIGHTS - detections are meaningless"
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM, as shells report


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``docker stop``, systemd), handled like Ctrl-C: finished frames
    are kept and written."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def exit_status(interrupt: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED


@contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM while the results are finished (a second Ctrl-C must not cut
    ``results.json`` or the video short); the first one held is raised afterwards."""
    if threading.current_thread() is not threading.main_thread():  # handlers live there only
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: held.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if held:
        raise Terminated() if held[0] == signal.SIGTERM else KeyboardInterrupt()


def _tracking_args(p: argparse.ArgumentParser) -> None:
    track, euro = TrackerConfig(), OneEuroConfig()
    g = p.add_argument_group("tracking (videos, cameras, streams)")
    g.add_argument("--track", action=argparse.BooleanOptionalAction, default=None,
                   help="give each person a track_id kept across frames (default: on for "
                   "videos, cameras and streams, off for images and folders)")
    g.add_argument("--track-threshold", type=unit_float, default=track.oks_threshold,
                   metavar="OKS", help="least OKS to continue a track (default %(default)s)")
    g.add_argument("--track-buffer", type=positive_int, default=track.buffer, metavar="FRAMES",
                   help="frames a lost track waits to be found again (default %(default)s)")
    g.add_argument("--track-min-joints", type=positive_int, default=track.min_joints,
                   metavar="N", help="joints a person needs to start a track (default %(default)s)")
    g.add_argument("--smooth", action="store_true",
                   help="One-Euro filter each tracked joint (less jitter, a little lag)")
    g.add_argument("--smooth-min-cutoff", type=positive_float, default=euro.min_cutoff,
                   metavar="HZ", help="cutoff of a still joint: lower, smoother (default %(default)s)")
    g.add_argument("--smooth-beta", type=non_negative_float, default=euro.beta, metavar="B",
                   help="cutoff rise per pixel/s of speed: higher, less lag (default %(default)s)")
    g.add_argument("--show-ids", action="store_true", help="write track ids on rendered frames")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="runtime/run.py", description=__doc__.strip().splitlines()[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--model", required=True, help="artifact folder (model.so + metadata.json)")
    p.add_argument("--input", required=True,
                   help="image, folder of images, video, camera (index or /dev/videoN), or "
                   "stream (rtsp://, http(s)://, ... URL or a GStreamer pipeline)")
    p.add_argument("--output", required=True, type=Path, help="folder for results")
    p.add_argument("--flip", action="store_true", help="flip test: average with the mirrored image")
    p.add_argument("--fast", action="store_true",
                   help="group at H/2 instead of input resolution (LitePose's Jetson demo)")
    p.add_argument("--no-adjust", action="store_true", help="skip the quarter-pixel adjustment")
    p.add_argument("--no-refine", action="store_true", help="skip filling missing joints")
    defaults = DecodeConfig()  # LitePose's valid.py settings, declared there once
    p.add_argument("--detection-threshold", type=float, default=defaults.detection_threshold,
                   help="minimum heatmap value of a joint (default %(default)s)")
    p.add_argument("--tag-threshold", type=float, default=defaults.tag_threshold,
                   help="maximum tag distance for joining a person (default %(default)s)")
    p.add_argument("--max-people", type=int, default=defaults.max_people,
                   help="people kept per image (default %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="TVM worker threads (0: default)")
    p.add_argument("--cores", choices=list(CORE_MODES), default="default",
                   help="pin TVM threads to the big or little cluster of a big.LITTLE board "
                   "(the other stages then run on the remaining cores)")
    p.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=None,
                   help="run decode+pre-process, inference and grouping+writing as overlapping "
                   "threads (default: on for videos, cameras and folders, off for one image)")
    p.add_argument("--post-workers", type=positive_int, default=None, metavar="N",
                   help="frames grouped and rendered at once by the post stage, written in frame "
                   "order (default: the cores inference leaves free, e.g. the LITTLE cluster "
                   "with --cores big; at least 1)")
    p.add_argument("--stats", type=Path, default=None,
                   help="write per-stage timings (medians without warm-up, busy %%, queue waits, "
                   "dropped frames) to this JSON file")
    p.add_argument("--no-render", action="store_true", help="write JSON only")
    p.add_argument("--save-raw", action="store_true",
                   help="write the pre-processed input and both raw outputs to raw/<frame>.npz")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true")
    _tracking_args(p)
    args = p.parse_args(argv)
    if args.smooth and args.track is False:
        p.error("--smooth filters tracked people: it cannot go with --no-track")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return _run(args)
    except KeyboardInterrupt as interrupt:  # before the stages started, or while finishing
        print("interrupted", file=sys.stderr)
        return exit_status(interrupt)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _open(args: argparse.Namespace):
    """The estimator and the source, checked before a frame runs (the output folder first)."""
    from runtime.api import PoseEstimator
    from runtime.atomic import check_writable_dir
    from runtime.sources import open_source

    check_writable_dir(args.output)  # before the artifact is loaded and a frame is run
    tracking = TrackerConfig(oks_threshold=args.track_threshold, buffer=args.track_buffer,
                             min_joints=args.track_min_joints)
    smoothing = (OneEuroConfig(min_cutoff=args.smooth_min_cutoff, beta=args.smooth_beta)
                 if args.smooth else None)
    est = PoseEstimator(args.model, flip=args.flip, fast=args.fast, adjust=not args.no_adjust,
                        refine=not args.no_refine, detection_threshold=args.detection_threshold,
                        tag_threshold=args.tag_threshold, max_people=args.max_people,
                        threads=args.threads, cores=args.cores, tracking=tracking,
                        smoothing=smoothing)
    source = open_source(args.input, args.max_frames)
    track = args.track if args.track is not None else source.video_like
    if track and not est.meta.oks_sigmas:
        if args.track:
            raise ValueError(f"{args.model} records no OKS sigmas (built by an older kit): "
                             "rebuild it with 'python -m compile build' to track people")
        logger.warning("%s records no OKS sigmas (an older build): tracking is off; rebuild "
                       "it to track people", args.model)
        track = False
    return est, source, track


def _run(args: argparse.Namespace) -> int:
    from runtime.artifact import configure_helper_thread
    from runtime.placement import plan
    from runtime.steps import StageError
    from runtime.writer import Writer

    try:
        est, source, track = _open(args)
    except (ValueError, OSError, RuntimeError) as err:  # RuntimeError: no OpenCL runtime / device
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = est.meta
    banner = RANDOM_BANNER if meta.weights.random else None
    print(f"model  {meta.describe()}")
    if banner:
        print(f"WARNING: {RANDOM_BANNER}: the artifact was built without a checkpoint")
    pipelined = args.pipeline if args.pipeline is not None else source.kind != "image"
    placement = plan(args.cores, args.threads) if pipelined else None
    workers = (args.post_workers or placement.post_workers) if pipelined else 1
    print(f"stages {'pipelined' if pipelined else 'serial'}"
          + (f"; {placement.description}; {workers} post worker(s)" if placement else "")
          + (f"; tracking{' + One-Euro smoothing' if args.smooth else ''}" if track else ""))
    writer = Writer(args.output, source, meta.skeleton, banner, render=not args.no_render,
                    save_raw=args.save_raw, progress=not args.quiet, show_ids=args.show_ids)
    runner = est.runner(source, writer, track=track, keep_raw=args.save_raw,
                        placement=placement, post_workers=workers,
                        setup_post=configure_helper_thread)
    status = 0
    try:
        runner.run_pipelined() if pipelined else runner.run_serial()
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt as interrupt:
        what = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
        print(f"{what}: stopping all stages; results so far are kept", file=sys.stderr)
        status = exit_status(interrupt)
    finally:
        with signals_deferred():
            writer.close()
    _report(args, writer, runner.stats, pipelined, banner)
    return status or (1 if writer.failures else 0)


def _report(args, writer, stats, pipelined: bool, banner: str | None) -> None:
    from runtime.atomic import write_json_atomic

    tracks = f", {writer.tracks} tracks" if writer.tracks else ""
    print(f"people {writer.people} in {stats.frames} frames{tracks} -> {writer.json_path} "
          f"(per frame: {writer.jsonl_path.name})")
    print("timing " + stats.table())
    if args.stats:
        write_json_atomic(args.stats, {"pipelined": pipelined, **stats.to_dict()}, indent=2)
    if banner:
        print(f"WARNING: {RANDOM_BANNER}")
    if writer.failures:
        print(f"error: {len(writer.failures)} input(s) could not be read or were cut short:",
              file=sys.stderr)
        for failure in writer.failures:
            print(f"  {failure}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
