"""Build the entry point of ``cpu.csr.spregtiling`` from your clone of the Sparse Register Tiling artifact.

    cd /path/to/sparse-register-tiling/spmm_nano_kernels && python -m codegen.generate_ukernels   # once
    PYTHONPATH=. python experiments/build_spregtiling.py build /path/to/sparse-register-tiling [--jobs 2]
    export SPMM_STUDY_SPREGTILING=...   # the line it prints

Compiles the artifact's fp32 AVX-512 kernels and the project's entry point into one cached .so, checks it
against float64 and prints the export line; one line and exit 2 when the clone, the compiler or the CPU will
not do. See spmm_study/cpu/spregtiling.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmm_study.cpu import spregtiling  # noqa: E402

if __name__ == "__main__":
    sys.exit(spregtiling.main(sys.argv[1:]))
