"""Count what the compiler made of a CPU kernel: vector FMAs (zmm = AVX-512, ymm = AVX2), scalar FMAs,
gathers. Usage: python experiments/cpu_asm.py  (prints one line per kernel; see experiments/notes-cpu.md).

The kernels are recompiled here without the on-disk cache (cached code cannot be inspected).
"""

import numba
import numpy as np


def census(fn, args, fastmath, parallel=True) -> dict:
    fresh = numba.njit(parallel=parallel, fastmath=fastmath)(fn.py_func)
    fresh(*args)
    asm = "\n".join(fresh.inspect_asm().values())
    lines = [ln.strip() for ln in asm.splitlines()]
    op = [ln.split()[0] if ln else "" for ln in lines]
    return {
        "fma_zmm": sum(o.startswith("vfmadd") and "zmm" in ln for o, ln in zip(op, lines)),
        "fma_ymm": sum(o.startswith("vfmadd") and "ymm" in ln for o, ln in zip(op, lines)),
        "fma_scalar": sum(o.startswith("vfmadd") and o.endswith("ss") for o in op),
        "gathers": sum("gather" in o for o in op),
        "lines": len(lines),
    }


def main():
    from spmm_study.cpu import k10_csr_rowwise, k12_csr_rowwise_par, k13_csr_tiled

    rows = np.arange(4, dtype=np.int32)
    bounds = np.array([0, 4], np.int64)
    indptr = np.zeros(5, np.int32)
    b = np.zeros((3, 300), np.float32)
    c = np.zeros((4, 300), np.float32)
    empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float32)
    for tn in [t for t in k13_csr_tiled.TILE_CHOICES if t]:  # 0 is "from the machine": one of these at build
        k = k13_csr_tiled.kernel(tn)
        print(f"cpu.csr.tiled tile_n={tn}:", census(k, (rows, bounds, indptr, empty_i, empty_f, b, c), {"contract"}))
    print("cpu.csr.rowwise:", census(k10_csr_rowwise.csr_rowwise, (indptr, empty_i, empty_f, b, c), False, parallel=False))
    print("cpu.csr.rowwise_par:", census(k12_csr_rowwise_par.csr_rowwise_par, (rows, bounds, indptr, empty_i, empty_f, b, c), False))


if __name__ == "__main__":
    main()
