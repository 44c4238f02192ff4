"""Vendor baselines on the CPU: numpy dense matmul (BLAS) and scipy CSR @ dense.

They are variants like any other (marked ``baseline``), measured by the same harness at the same thread
count (the harness sets every BLAS pool through threadpoolctl).

* ``cpu.dense.numpy`` — A expanded to dense, ``np.matmul`` into a preallocated C (OpenBLAS/MKL sgemm):
  the "just use dense" answer every sparse kernel must beat.
* ``cpu.csr.scipy`` — ``scipy.sparse.csr_matrix @ B``: scipy's single-threaded C++ csr_matvecs. It
  allocates its output, so ``run`` copies it into C (the copy is part of the measured time).
"""

import numpy as np

from spmm_study import movement
from spmm_study.registry import host_prepared, variant


@variant("cpu.dense.numpy", loop_order="BLAS", movement=movement.dense_blas, rung=900, baseline=True)
def build_numpy(problem):
    """numpy dense matmul (BLAS sgemm/dgemm) on A expanded to dense."""
    a = problem.a.to_dense()
    b = problem.b
    c = problem.new_output()
    return host_prepared(lambda: np.matmul(a, b, out=c), c)


@variant("cpu.csr.scipy", loop_order="i→p→j (C++)", movement=movement.csr_rowwise, rung=901, baseline=True)
def build_scipy(problem):
    """scipy.sparse CSR @ dense (single-threaded csr_matvecs)."""
    a = problem.a.to_scipy()
    b = problem.b
    c = problem.new_output()

    def run():
        c[...] = a @ b

    return host_prepared(run, c)
