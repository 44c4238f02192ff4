"""Rung 40 — code specialised to one sparsity pattern (the SparseRT idea): indices become constants in the code.

What changed from the CSR rungs: no kernel reads ``indptr`` or ``indices`` any more. ``build`` writes the
kernel with the pattern (and N) baked in and JIT-compiles it: for each row of A, a loop over C's columns
in vectors of 16 fp32 whose body is that row's nonzeros fully unrolled —
``acc = fma(B[k0·N + j : +16], d[p0], acc)`` with every k0·N and p0 a literal constant — then one store of
the 16 results. Row offsets, index loads and the loop over nonzeros disappear; the values stay in an array
(``d``), so new weights with the same pattern reuse the kernel (as in inference, where SparseRT (Wang, 2020)
specialises kernels to the fixed pattern of pruned weights).

How: the kernel is generated as LLVM IR text (explicit ``<16 x float>`` vectors, ``llvm.fma``), compiled by
llvmlite for this CPU (AVX-512 here), and each thread-part (rows split by nonzeros) becomes one function;
a cached numba ``prange`` kernel calls the parts through their addresses. (A first version generated
Python for numba: numba's type inference took 3 s for 132 nonzeros and 75 s for 3 277 — unusable — so the
IR is written directly; notes-cpu.md has the numbers.) Each row's sum uses 4 interleaved partial sums
(nonzero p goes to partial p mod 4, added in a fixed order at the end) so a 50-term row is not one
4-cycle-latency FMA chain: deterministic, within the fp32 tolerance.

Costs: generation + compilation are timed as ``setup_s`` (and ``info`` holds the IR size and compile
time): 6–15 s for the 21k nonzeros of DLMC ffn_conv1 at 98% and 25–50 s for the 105k at 90% here.
Matrices with more than ``max_nnz`` nonzeros are refused (a SKIP row that says so).

What it buys, measured at 98% on one thread: against the slice-view version of ``cpu.csr.tiled`` it was
level with warm caches (0.206 vs 0.214 ms); against the current one (pointer views, packed B) it is 1.5×
slower warm (0.200 vs 0.132 ms) and 1.9× slower cold (0.42 vs 0.22 ms). Warm, the loop issues two loads
per FMA (a vector of B and a broadcast of the value) where the register-blocked kernel issues one, because
its 256-float accumulator reuses each value across the whole row of C. Cold, the code itself is data that
must move: two instructions (≈16 bytes) per nonzero, 0.35 MB at 98% and 1.7 MB at 90%, fetched after the
harness's cache flush by the front end with little prefetching. (A padded copy of B, to rule out
cache-set conflicts of the 1 KiB-strided B rows, changed nothing: 0.40 vs 0.45 ms.)

Loop order: part t (prange) → row i (constant) → j (vectors of 16) → p (unrolled, constant).
Traffic (``movement.csr_codegen``): no index traffic; each value is re-read once per vector of columns
(from L1); B and C as the register-blocked kernel.
"""

from __future__ import annotations

import time

import numba
import numpy as np
from llvmlite import ir as llir
from numba import njit, prange, types
from numba.extending import intrinsic

from spmm_study import movement
from spmm_study.cpu.balance import partition
from spmm_study.errors import ResourceError
from spmm_study.registry import Param, host_prepared, variant

PARTIALS = 4  # independent partial sums per row: FMA latency 4 cycles × 2 pipes → ≥ 4 chains in flight


def _row_ir(lines: list, i: int, start: int, end: int, indices, n: int, width: int, j0: int, j1: int,
            fty: str, tag: str, ldb: int) -> None:
    """IR for row i over columns [j0, j1) in vectors of ``width`` (1 = scalar tail)."""
    vt = f"<{width} x {fty}>" if width > 1 else fty
    fma = f"@llvm.fma.v{width}{'f32' if fty == 'float' else 'f64'}" if width > 1 else f"@llvm.fma.{'f32' if fty == 'float' else 'f64'}"
    zero = "zeroinitializer" if width > 1 else "0.0"
    r = f"r{i}{tag}"
    lines.append(f"  br label %{r}")
    lines.append(f"{r}:")
    lines.append(f"  %{r}.j = phi i64 [{j0}, %{r}.pre], [%{r}.jn, %{r}]")
    acc = [zero] * PARTIALS
    for t, p in enumerate(range(start, end)):
        k = int(indices[p])
        lines.append(f"  %{r}.o{t} = add i64 %{r}.j, {k * ldb}")
        lines.append(f"  %{r}.pb{t} = getelementptr inbounds {fty}, ptr %b, i64 %{r}.o{t}")
        lines.append(f"  %{r}.b{t} = load {vt}, ptr %{r}.pb{t}, align 4")
        lines.append(f"  %{r}.pd{t} = getelementptr inbounds {fty}, ptr %d, i64 {p}")
        lines.append(f"  %{r}.s{t} = load {fty}, ptr %{r}.pd{t}, align 4")
        if width > 1:
            lines.append(f"  %{r}.e{t} = insertelement {vt} poison, {fty} %{r}.s{t}, i64 0")
            lines.append(f"  %{r}.v{t} = shufflevector {vt} %{r}.e{t}, {vt} poison, <{width} x i32> zeroinitializer")
            val = f"%{r}.v{t}"
        else:
            val = f"%{r}.s{t}"
        q = t % PARTIALS
        lines.append(f"  %{r}.a{t} = call {vt} {fma}({vt} %{r}.b{t}, {vt} {val}, {vt} {acc[q]})")
        acc[q] = f"%{r}.a{t}"
    total = acc[0]
    for q in range(1, PARTIALS):  # fixed order: ((p0 + p1) + p2) + p3
        if acc[q] != zero:
            lines.append(f"  %{r}.sum{q} = fadd {vt} {total}, {acc[q]}")
            total = f"%{r}.sum{q}"
    lines.append(f"  %{r}.oc = add i64 %{r}.j, {i * n}")
    lines.append(f"  %{r}.pc = getelementptr inbounds {fty}, ptr %c, i64 %{r}.oc")
    lines.append(f"  store {vt} {total}, ptr %{r}.pc, align 4")
    lines.append(f"  %{r}.jn = add i64 %{r}.j, {width}")
    lines.append(f"  %{r}.more = icmp ult i64 %{r}.jn, {j1}")
    lines.append(f"  br i1 %{r}.more, label %{r}, label %{r}.end")
    lines.append(f"{r}.end:")


def generate_ir(indptr: np.ndarray, indices: np.ndarray, n: int, bounds: np.ndarray, dtype, ldb: int | None = None) -> str:
    """LLVM IR of ``part_<t>(ptr d, ptr b, ptr c)`` for each row range [bounds[t], bounds[t+1]); B has rows
    ``ldb`` elements apart (default N)."""
    ldb = n if ldb is None else ldb
    fty = "float" if np.dtype(dtype) == np.float32 else "double"
    width = 16 if fty == "float" else 8  # one 512-bit vector
    n_full = n - n % width
    out = [f"declare <{width} x {fty}> @llvm.fma.v{width}{'f32' if fty == 'float' else 'f64'}"
           f"(<{width} x {fty}>, <{width} x {fty}>, <{width} x {fty}>)",
           f"declare {fty} @llvm.fma.{'f32' if fty == 'float' else 'f64'}({fty}, {fty}, {fty})"]
    for t in range(bounds.size - 1):
        out.append(f"define void @part_{t}(ptr noalias readonly %d, ptr noalias readonly %b, ptr noalias %c) nounwind {{")
        out.append("entry:")
        for i in range(int(bounds[t]), int(bounds[t + 1])):
            start, end = int(indptr[i]), int(indptr[i + 1])
            for tag, w, j0, j1 in (("v", width, 0, n_full), ("s", 1, n_full, n)):
                if j1 <= j0:
                    continue
                out.append(f"  br label %r{i}{tag}.pre")
                out.append(f"r{i}{tag}.pre:")
                if start == end:  # an empty row: a loop of zero stores
                    vt = f"<{w} x {fty}>" if w > 1 else fty
                    r = f"r{i}{tag}"
                    out += [f"  br label %{r}", f"{r}:", f"  %{r}.j = phi i64 [{j0}, %{r}.pre], [%{r}.jn, %{r}]",
                            f"  %{r}.oc = add i64 %{r}.j, {i * n}",
                            f"  %{r}.pc = getelementptr inbounds {fty}, ptr %c, i64 %{r}.oc",
                            f"  store {vt} {'zeroinitializer' if w > 1 else '0.0'}, ptr %{r}.pc, align 4",
                            f"  %{r}.jn = add i64 %{r}.j, {w}", f"  %{r}.more = icmp ult i64 %{r}.jn, {j1}",
                            f"  br i1 %{r}.more, label %{r}, label %{r}.end", f"{r}.end:"]
                else:
                    _row_ir(out, i, start, end, indices, n, w, j0, j1, fty, tag, ldb)
        out.append("  ret void")
        out.append("}")
    return "\n".join(out) + "\n"


_LLVM_READY = False


def _target_machine():
    import llvmlite.binding as llvm

    global _LLVM_READY
    if not _LLVM_READY:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _LLVM_READY = True
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                        opt=2, codemodel="jitdefault")


def compile_ir(text: str, parts: int):
    """Compile IR for this CPU; return (engine, addresses of part_0..part_{parts-1})."""
    import llvmlite.binding as llvm

    tm = _target_machine()
    mod = llvm.parse_assembly(text)
    mod.verify()
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    addrs = np.array([engine.get_function_address(f"part_{t}") for t in range(parts)], dtype=np.int64)
    return engine, addrs


@intrinsic
def _call_part(typingctx, addr, d, b, c):
    """Call the generated ``void part(ptr d, ptr b, ptr c)`` at address ``addr`` with the arrays' data."""
    if not all(isinstance(x, types.Array) for x in (d, b, c)):
        return None

    def codegen(context, builder, sig, args):
        ptr = llir.IntType(8).as_pointer()
        fnty = llir.FunctionType(llir.VoidType(), [ptr, ptr, ptr])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        datas = [builder.bitcast(context.make_array(t)(context, builder, v).data, ptr)
                 for t, v in zip(sig.args[1:], args[1:])]
        builder.call(fn, datas)
        return context.get_dummy_value()

    return types.none(addr, d, b, c), codegen


@njit(parallel=True, cache=True)
def run_parts(addrs, d, b, c):
    for t in prange(addrs.size):
        _call_part(addrs[t], d, b, c)


@variant("cpu.csr.codegen", loop_order="t‖→i(const)→j→p(const)", movement=movement.csr_codegen, params=(
    Param("max_nnz", 150_000, (150_000,), "refuse matrices with more nonzeros (code size and compile time grow "
          "with nnz)", minimum=0, maximum=2_000_000),
))
def build(problem, max_nnz):
    """SparseRT-style: LLVM IR generated with the pattern and N as constants, JIT-compiled (compile = setup)."""
    a = problem.a
    if a.nnz > max_nnz:
        raise ResourceError(f"cpu.csr.codegen bakes every nonzero into code: {a.nnz} nonzeros is past max_nnz="
                            f"{max_nnz} (code size and compile time grow with nnz; --param max_nnz=... to try)")
    threads = numba.get_num_threads()
    _, bounds = partition(a.row_lengths(), threads, "nnz")
    n = problem.n
    t0 = time.perf_counter()
    text = generate_ir(a.indptr, a.indices, n, bounds, problem.dtype, ldb=n)
    t1 = time.perf_counter()
    engine, addrs = compile_ir(text, bounds.size - 1)
    t2 = time.perf_counter()
    d = np.ascontiguousarray(a.data)
    b = problem.b
    c = problem.new_output()
    info = {"ir_bytes": len(text), "generate_s": round(t1 - t0, 4), "compile_s": round(t2 - t1, 4),
            "parts": int(bounds.size - 1), "threads": threads}
    prepared = host_prepared(lambda: run_parts(addrs, d, b, c), c, info)
    prepared.release = lambda: engine.close()
    prepared._engine = engine  # keep the compiled code alive as long as the closure
    return prepared
