"""This machine's fp32 FMA peak, measured: a loop of independent vector FMAs, JIT-compiled by
LLVM (llvmlite, numba's code generator) for this CPU and timed on each thread.

A tuned sgemm gets 80-90 % of it; a tuned conv kernel can run above an sgemm's rate, so only
the FMA loop is a ceiling. Run in a process of its own (``python -m compile.bench.peak THREADS``):
no other engine's thread pool may spin beside it.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
import time

ACCUMULATORS = 10  # independent FMA chains: covers latency x pipes of current cores (4 x 2)

_IR = """
declare <{w} x float> @llvm.fma.v{w}f32(<{w} x float>, <{w} x float>, <{w} x float>)

define void @fma_loop(i64 %n, float* %ab, float* %out) {{
entry:
  %a0 = load float, float* %ab
  %bp = getelementptr float, float* %ab, i64 1
  %b0 = load float, float* %bp
  %ai = insertelement <{w} x float> undef, float %a0, i32 0
  %a = shufflevector <{w} x float> %ai, <{w} x float> undef, <{w} x i32> zeroinitializer
  %bi = insertelement <{w} x float> undef, float %b0, i32 0
  %b = shufflevector <{w} x float> %bi, <{w} x float> undef, <{w} x i32> zeroinitializer
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
{phis}
{fmas}
  %next = add i64 %i, 1
  %more = icmp ult i64 %next, %n
  br i1 %more, label %loop, label %exit
exit:
{sums}
  %total = call float @llvm.vector.reduce.fadd.v{w}f32(float 0.0, <{w} x float> %s{last})
  store float %total, float* %out
  ret void
}}

declare float @llvm.vector.reduce.fadd.v{w}f32(float, <{w} x float>)
"""


def _ir(width: int, k: int) -> str:
    v = f"<{width} x float>"
    phis = "\n".join(f"  %acc{j} = phi {v} [zeroinitializer, %entry], [%nacc{j}, %loop]"
                     for j in range(k))
    fmas = "\n".join(f"  %nacc{j} = call {v} @llvm.fma.v{width}f32({v} %acc{j}, {v} %a, {v} %b)"
                     for j in range(k))
    sums = [f"  %s0 = fadd {v} %nacc0, zeroinitializer"]
    sums += [f"  %s{j} = fadd {v} %s{j - 1}, %nacc{j}" for j in range(1, k)]
    return _IR.format(w=width, phis=phis, fmas=fmas, sums="\n".join(sums), last=k - 1)


def vector_width(features: str) -> int:
    """fp32 lanes of the widest FMA the CPU has, from LLVM's host feature string."""
    have = {f[1:] for f in features.split(",") if f.startswith("+")}
    if "avx512f" in have:
        return 16
    if "fma" in have or "avx2" in have:
        return 8
    return 4  # NEON, SSE


def fma_loop():
    """``(loop, lanes, cpu)``: the FMA loop compiled for this CPU. ``loop(n, ab, out)`` runs
    ``n`` iterations of ``ACCUMULATORS`` chains ``acc = acc * ab[0] + ab[1]`` of ``lanes``-wide
    fp32 vectors from zero and writes the sum of every lane of every chain to ``out[0]``."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    width = vector_width(features)
    machine = llvm.Target.from_default_triple().create_target_machine(
        cpu=cpu, features=features, opt=3)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(_ir(width, ACCUMULATORS)), machine)
    engine.finalize_object()
    loop = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.POINTER(ctypes.c_float),
                            ctypes.POINTER(ctypes.c_float))(engine.get_function_address("fma_loop"))
    loop.engine = engine  # the code lives as long as the engine
    return loop, width, cpu


def fma_peak(threads: int, seconds: float = 0.2, rounds: int = 5) -> tuple[float, str]:
    """fp32 multiply-accumulates per second (GMAC/s) of ``threads`` threads each running the FMA
    loop at once (the slowest thread's time counts), best of ``rounds``; and how it was got."""
    loop, width, cpu = fma_loop()
    ab = (ctypes.c_float * 2)(0.999999, 1e-7)
    per_iter = width * ACCUMULATORS

    def timed(n: int) -> float:  # ctypes releases the GIL: the threads run at once
        spans = [0.0] * threads

        def one(t: int) -> None:
            out = ctypes.c_float()
            t0 = time.perf_counter()
            loop(n, ab, ctypes.byref(out))
            spans[t] = time.perf_counter() - t0

        workers = [threading.Thread(target=one, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return max(spans)

    n = 1 << 16
    while timed(n) < seconds / 4:
        n *= 2
    n = int(n * seconds / timed(n))
    best = min(timed(n) for _ in range(rounds))
    return (threads * n * per_iter / best / 1e9,
            f"measured: FMA loop, {ACCUMULATORS} chains of {width}-lane fp32 FMAs ({cpu}), "
            f"{threads} thread(s), best of {rounds}")


if __name__ == "__main__":
    print(json.dumps(fma_peak(int(sys.argv[1]))))
