"""Argument parsing for each ``python -m compile`` subcommand (one module each)."""

from __future__ import annotations

import argparse
import logging
import sys

from compile import __version__


def make_parser(name: str, description: str) -> argparse.ArgumentParser:
    """A parser named ``python -m compile NAME`` with ``--version`` and ``--verbose``."""
    parser = argparse.ArgumentParser(prog=f"python -m compile {name}", description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def input_size_arg(text: str) -> str:
    """argparse ``type=`` for ``--input-size``: ``"HxW"``, both multiples of 16."""
    from compile.model.zoo import parse_input_size

    try:
        h, w = parse_input_size(text, 0)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return f"{h}x{w}"


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts that must be >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse ``type=`` for counts that may be 0."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """argparse ``type=`` for amounts (minutes, seconds) that must be > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def add_input_size_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-size", metavar="HxW", type=input_size_arg, default=None,
                        help="network input size, multiples of 16 (default: the model's own)")


def add_tracker_args(parser: argparse.ArgumentParser) -> None:
    """``--tracker`` and ``--key`` (defaults: TVM_TRACKER_*, else the virtual board's tracker)."""
    from compile.boards.tracker import tracker_arg

    parser.add_argument("--tracker", metavar="HOST:PORT", type=tracker_arg, default=None,
                        help="RPC tracker (default: TVM_TRACKER_HOST/PORT, else 127.0.0.1:9190, "
                        "the virtual board's)")
    parser.add_argument("--key", default=None, help="board key at the tracker (default: the "
                        "target's)")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--dataset``, ``--input-size``, ``--checkpoint`` (choices from the registries)."""
    from compile.model.zoo import DATASETS, MODELS

    parser.add_argument("--model", required=True, type=str.lower, choices=list(MODELS),
                        help="LitePose variant")
    parser.add_argument("--dataset", default="crowdpose", type=str.lower, choices=list(DATASETS),
                        help="joint set of the heads (default: crowdpose, 14 joints)")
    add_input_size_arg(parser)
    parser.add_argument("--checkpoint", metavar="FILE", default=None,
                        help="official LitePose checkpoint (.pth/.pth.tar); default: seeded random")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")


def add_target_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--target`` with the presets of the TARGETS registry as choices."""
    from compile.targets import TARGETS

    parser.add_argument("--target", required=required, choices=list(TARGETS),
                        help="deployment target preset")


def setup_logging(verbose: bool) -> None:
    """Configure logging once, at the CLI entry point."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def fail(message: str) -> int:
    """Print a one-line error and return the CLI's error status."""
    print(f"error: {message}", file=sys.stderr)
    return 2
