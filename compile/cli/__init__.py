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


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--dataset``, ``--input-size``, ``--checkpoint`` (choices from the registries)."""
    from compile.models import DATASETS, MODELS

    parser.add_argument("--model", required=True, type=str.lower, choices=list(MODELS),
                        help="LitePose variant")
    parser.add_argument("--dataset", default="crowdpose", type=str.lower, choices=list(DATASETS),
                        help="joint set of the heads (default: crowdpose, 14 joints)")
    parser.add_argument("--input-size", metavar="HxW", default=None,
                        help="network input size, multiples of 16 (default: the model's own)")
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
