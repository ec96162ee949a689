"""``python -m compile opencl-runtime``: build TVM's OpenCL runtime from an apache/tvm source tree."""

from __future__ import annotations

from pathlib import Path

from compile.cli import fail, make_parser, setup_logging


def main(argv: list[str]) -> int:
    from compile.boards.opencl_runtime import ARCHES, TVM_GIT

    parser = make_parser("opencl-runtime", "Build libtvm_runtime_opencl.so (the PyPI TVM wheels "
                         "ship no OpenCL runtime) from an apache/tvm source tree, against the TVM "
                         "runtime it will load into, and install it next to that runtime: this "
                         "venv's (x86_64) or the virtual board's (aarch64, which also gains PoCL "
                         "and serves its OpenCL device as 'rk3399-mali'). --output instead writes "
                         "it to a folder to copy to a real board.")
    parser.add_argument("--arch", choices=[*ARCHES, "all"], default="all",
                        help="x86_64: this machine; aarch64: boards (cross-compiled); all: both "
                        "(default)")
    parser.add_argument("--tvm-source", metavar="DIR", default=None,
                        help="apache/tvm checkout (default: $TVM_SOURCE, else the kit's cached "
                        "clone, else a fresh clone of the release matching the installed TVM)")
    parser.add_argument("--output", metavar="DIR", type=Path, default=None,
                        help="write the library here instead of installing it")
    parser.add_argument("--git-url", default=TVM_GIT, help="where to clone from (default: %(default)s)")
    parser.add_argument("--git-ref", default=None,
                        help="tag or branch to clone (default: v<installed TVM version>)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from compile.boards.opencl_runtime import make_runtime

    archs = list(ARCHES) if args.arch == "all" else [args.arch]
    if args.output and len(archs) > 1:
        return fail("--output writes one library: choose --arch x86_64 or --arch aarch64")
    for arch in archs:
        try:
            result = make_runtime(arch, args.tvm_source, args.output, args.git_url, args.git_ref)
        except (ValueError, RuntimeError) as err:
            return fail(str(err))
        print(result.describe())
        if result.device is not None and not result.device["exist"]:
            return fail(f"the {arch} OpenCL runtime loads, but shows no OpenCL device: install "
                        "pocl-opencl-icd (CPU) or a GPU driver")
    if args.output:
        print("copy it to the board next to libtvm_runtime.so (the folder printed there by: "
              "python3 -c \"import tvm, os; print(os.path.dirname(tvm.__file__) + '/lib')\"), "
              "or point LITEPOSE_OPENCL_RUNTIME at it")
    elif "aarch64" in archs:
        print("the virtual board serves its OpenCL device (PoCL) as 'rk3399-mali' from its next "
              "start ('make board-stop board' if it is running)")
    return 0
