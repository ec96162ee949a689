"""``python -m compile <subcommand>``: a dispatcher that imports only the chosen subcommand."""

from __future__ import annotations

import importlib
import sys

from . import __version__

SUBCOMMANDS = {
    "info": ("compile.cli.info", "print parameters, MACs, input size and joints of a model"),
    "build": ("compile.cli.build", "compile a model for a target into a .so plus metadata"),
    "tune": ("compile.cli.tune", "tune with MetaSchedule, locally or through an RPC tracker"),
    "deploy": ("compile.cli.deploy", "upload an artifact to a board over RPC, verify and time it"),
    "board": ("compile.cli.board", "build / start / stop / query the virtual aarch64 board"),
    "bench": ("compile.cli.bench", "TVM vs ONNX Runtime, OpenVINO, ncnn, PyTorch on this machine"),
    "profile": ("compile.cli.profile", "each kernel of an artifact in its network: FMA peak, tuning"),
    "bench-post": ("compile.cli.bench_post", "the runtime's post-processing against the network alone"),
    "eval": ("compile.cli.eval", "accuracy of an artifact on a COCO / CrowdPose keypoint set"),
    "synthetic": ("compile.cli.synthetic", "write a small synthetic keypoint set to try eval on"),
    "opencl-runtime": ("compile.cli.opencl_runtime",
                       "build TVM's OpenCL runtime from an apache/tvm source tree"),
    "demo": ("compile.cli.demo", "build for a board, start the virtual board, deploy, run.py there"),
}


def _usage() -> str:
    lines = ["usage: python -m compile <subcommand> [options]", "", "subcommands:"]
    lines += [f"  {name:14s} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run 'python -m compile <subcommand> --help' for its options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"compile (LitePose edge kit) {__version__}")
        return 0
    if argv[0] not in SUBCOMMANDS:
        print(f"error: unknown subcommand {argv[0]!r}; valid choices: {', '.join(SUBCOMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
