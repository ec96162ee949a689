"""TARGETS registry: TVM target dicts, cross compilers, RPC keys and ELF machines per board."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass

BUILD_MACHINE = "build-machine"  # a target value resolved by tvm_target() on the build machine


@dataclass(frozen=True)
class TargetPreset:
    """A deployment target: what TVM compiles for, how it is linked, how boards are found."""

    name: str
    target: dict  # a TVM target dict (never the string form); BUILD_MACHINE values are resolved
    arch: str  # machine of the produced shared object, a key of runtime.meta.ELF_MACHINES
    cross_compiler: str | None  # g++ driver that links the .so (None: the host's own)
    rpc_key: str | None  # default tracker key for boards of this kind
    description: str = ""

    @property
    def is_gpu(self) -> bool:
        return self.target["kind"] != "llvm"

    def tvm_target(self):
        """The ``tvm.target.Target`` (imports TVM). ``host`` is this build machine: its CPU as
        LLVM names it (e.g. ``emeraldrapids``, AVX-512) and its core count, written out in the
        artifact's metadata."""
        import tvm

        target = dict(self.target)
        if target.get("mcpu") == BUILD_MACHINE:
            from tvm.target.codegen import llvm_get_system_cpu

            target["mcpu"] = llvm_get_system_cpu()
        if target.get("num-cores") == BUILD_MACHINE:
            target["num-cores"] = os.cpu_count() or 1
        if target.get("model") == BUILD_MACHINE:
            target["model"] = machine_model()
        return tvm.target.Target(target)


def machine_model() -> str:
    """This machine as a target ``model``: its CPU's marketing name, core count and the threads
    candidates are timed with here (all of them, :func:`compile.tuning.tune.make_runner`), e.g.
    ``amd-epyc-2c-2t``. Tuning records carry it, so run times measured here are told apart from
    another machine's even when LLVM gives both CPUs one name. Records named ``...-2c`` were
    timed by TVM's default pool, which on x86 is half the logical CPUs (it assumes hyper-threads):
    one thread on a 2-vCPU VM."""
    name = ""
    try:
        with open("/proc/cpuinfo") as fh:
            name = next((line.split(":", 1)[1] for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    slug = re.sub(r"[^a-z0-9]+", "-", (name or platform.processor() or "cpu").lower()).strip("-")
    cores = os.cpu_count() or 1
    return f"{slug}-{cores}c-{cores}t"


def _arm(mcpu: str, cores: int, model: str) -> dict:
    return {
        "kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": mcpu, "mattr": ["+neon"],
        "num-cores": cores, "keys": ["arm_cpu", "cpu"], "device": "arm_cpu", "model": model,
    }


_AARCH64_GXX = "aarch64-linux-gnu-g++"

TARGETS: dict[str, TargetPreset] = {
    "host": TargetPreset(
        "host",
        {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": BUILD_MACHINE,
         "num-cores": BUILD_MACHINE, "model": BUILD_MACHINE},
        "x86_64", None, None,
        "this x86-64 build machine: its own CPU (LLVM's name, e.g. AVX-512) and core count",
    ),
    "rk3399": TargetPreset(
        "rk3399", _arm("cortex-a72", 2, "rk3399"), "aarch64", _AARCH64_GXX, "rk3399",
        "Rockchip RK3399 big cluster: 2x Cortex-A72",
    ),
    "rk3399-little": TargetPreset(
        "rk3399-little", _arm("cortex-a53", 4, "rk3399"), "aarch64", _AARCH64_GXX, "rk3399",
        "Rockchip RK3399 LITTLE cluster: 4x Cortex-A53",
    ),
    "rk3399-mali": TargetPreset(
        "rk3399-mali",
        {"kind": "opencl", "device": "mali", "model": "rk3399",
         "host": _arm("cortex-a72", 2, "rk3399")},
        "aarch64", _AARCH64_GXX, "rk3399-mali",
        "Rockchip RK3399 Mali-T860 GPU through OpenCL (needs TVM's OpenCL runtime: make "
        "opencl-runtime ARCH=aarch64)",
    ),
    "host-opencl": TargetPreset(
        "host-opencl",
        {"kind": "opencl", "device": "mali", "model": "rk3399",
         "host": {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}},
        "x86_64", None, None,
        "the rk3399-mali OpenCL kernels (Mali limits) run by this machine's OpenCL device "
        "(PoCL on the CPU): a functional check of the GPU code, not Mali speed",
    ),
    "rpi4": TargetPreset(
        "rpi4", _arm("cortex-a72", 4, "rpi4"), "aarch64", _AARCH64_GXX, "rpi4",
        "Raspberry Pi 4 Model B: 4x Cortex-A72 (64-bit OS)",
    ),
    "aarch64": TargetPreset(
        "aarch64",
        {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"], "num-cores": 4,
         "keys": ["arm_cpu", "cpu"], "device": "arm_cpu"},
        "aarch64", _AARCH64_GXX, "aarch64",
        "any 64-bit Arm Linux (generic ARMv8-A with NEON, 4 cores)",
    ),
}


def get_target(name: str) -> TargetPreset:
    """Look a target preset up by name, or raise ``ValueError`` listing the valid names."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; valid choices: {', '.join(TARGETS)}")
    return TARGETS[name]
