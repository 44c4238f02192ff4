"""Run GPU variants in the numba CUDA simulator on tiny edge matrices (used by test_gpu_sim.py).

Must run in a process that set NUMBA_ENABLE_CUDASIM=1 before numba.cuda was imported. Usage:
``python tests/gpu_sim_cases.py VARIANT_ID`` — prints one line per case, exits 1 on any failure.
Params are small so tiny inputs still have tails, several blocks and several chunks/tiles.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import check_variant, edge_matrices  # noqa: E402

import numpy as np  # noqa: E402

from spmm_study.formats import CSR  # noqa: E402

# variant -> list of (params, matrices, N values); every case runs twice (check_variant) when deterministic
SMALL = ["empty_rows", "n_not_multiple_of_tile", "1x1", "all_zero", "one_dense_row"]
CASES = {
    "gpu.dense.naive": [({"block_x": 8, "block_y": 4}, ["empty_rows", "1x1"], (5, 11))],
    "gpu.dense.tiled": [({"tile": 8}, ["n_not_multiple_of_tile", "1x1"], (5, 11))],
    "gpu.csr.row_thread": [({"threads": 32}, SMALL + ["tall"], (3, 9))],
    "gpu.csr.row_col": [({"block_x": 8, "block_y": 4}, SMALL, (5, 11))],
    "gpu.csr.block_smem": [({"threads": 8}, SMALL, (5, 11))],
    "gpu.csr.warp_vec": [({"vec": 4, "tiles": 2, "unroll": 2, "threads": 64}, ["empty_rows", "one_dense_row", "1x1"], (9, 12)),
                         ({"vec": 1, "tiles": 1, "unroll": 1, "threads": 32}, ["all_zero"], (3,))],
    "gpu.csr.subwarp": [({"lanes": 4, "vec": 2, "tiles": 2, "unroll": 2, "threads": 16}, SMALL, (6, 7, 19))],
    "gpu.csr.swizzle": [({"lanes": 2, "vec": 4, "tiles": 1, "unroll": 2, "threads": 8}, SMALL, (8, 11)),
                        ({"lanes": 4, "vec": 4, "tiles": 2, "unroll": 4, "threads": 8}, SMALL, (12, 37)),
                        ({"lanes": 8, "vec": 2, "tiles": 1, "unroll": 8, "threads": 16}, ["one_dense_row"], (9,))],
    "gpu.csr.nnz_split": [({"chunk": 3, "vec": 2, "tiles": 1, "threads": 64}, SMALL, (4, 7)),
                          ({"chunk": 40, "vec": 4, "tiles": 1, "threads": 32}, ["one_dense_row"], (8,))],
    "gpu.csr.densify_tile": [({"vec": 2, "warps": 2, "rows_per_warp": 2, "kt": 4, "unroll": 2}, SMALL, (6, 67)),
                             ({"vec": 4, "warps": 1, "rows_per_warp": 3, "kt": 8, "unroll": 4, "buffers": 1}, ["one_dense_row", "empty_rows"], (5, 8)),
                             ({"vec": 1, "warps": 2, "rows_per_warp": 1, "kt": 4, "unroll": 1}, ["n_not_multiple_of_tile"], (3,))],
    "gpu.csr.l1_panel": [({"lanes": 4, "vec": 4, "tiles": 1, "unroll": 2, "threads": 8, "blocks_per_sm": 2, "slots": 3},
                          SMALL, (5, 16, 37)),
                         ({"lanes": 2, "vec": 2, "tiles": 2, "unroll": 4, "threads": 4, "blocks_per_sm": 1, "slots": 5},
                          ["n_not_multiple_of_tile", "one_dense_row"], (3, 30)),
                         # more panels than SM slots: each slot walks several panels
                         ({"lanes": 4, "vec": 4, "tiles": 1, "unroll": 4, "threads": 8, "blocks_per_sm": 2, "slots": 1},
                          ["empty_rows", "one_dense_row"], (37,))],
    "gpu.csr.row_split": [({"warps": 2, "vec": 4, "unroll": 2}, SMALL, (6, 8)),
                          ({"warps": 3, "vec": 2, "unroll": 4}, ["one_dense_row", "n_not_multiple_of_tile"], (64, 5))],
    # the chooser: the packaged (H100-interim) table on tiny N picks rung 19 with its real launch shape; the
    # test table sends N<8 to rung 15, skewed rows at N>=8 to rung 17, the rest to the default (rung 19)
    "gpu.csr.auto": [({}, ["empty_rows", "1x1"], (5,)),
                     ({"table": "tests/chooser_sim_table.json"}, SMALL, (5, 9))],
    # the fused rungs: the epilogue on empty rows, N tails and a dense row (the loop nests are rungs 19 and 15's)
    "gpu.csr.row_split_fused": [({"warps": 2, "vec": 4, "unroll": 2, "act": "clamp", "bias": "nonzero", "ymax": 1.0},
                                 ["empty_rows", "n_not_multiple_of_tile"], (6, 8)),
                                ({"warps": 3, "vec": 2, "unroll": 4, "act": "relu", "bias": "row"},
                                 ["one_dense_row", "1x1", "all_zero"], (5,))],
    "gpu.csr.swizzle_fused": [({"lanes": 4, "vec": 4, "tiles": 2, "unroll": 2, "threads": 8, "act": "clamp",
                                "bias": "row", "ymax": 1.0}, ["empty_rows", "n_not_multiple_of_tile"], (9, 12)),
                              ({"lanes": 2, "vec": 1, "tiles": 1, "unroll": 1, "threads": 8, "act": "relu",
                                "bias": "nonzero"}, ["one_dense_row", "1x1", "all_zero"], (3,))],
    "gpu.coo.atomic": [({"block_x": 8, "block_y": 4}, SMALL, (5, 11))],
    "gpu.nm24.structured": [({"vec": 4, "block_x": 2, "block_y": 4}, ["nm24", "nm24_wide"], (6, 9, 8)),
                            ({"vec": 1, "block_x": 4, "block_y": 2}, ["nm24"], (5,))],
}


def nm24(m, k, seed):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((m, k)).astype(np.float32)
    for i in range(m):
        for g in range(0, k, 4):
            keep = rng.choice(min(4, k - g), size=min(2, k - g), replace=False)
            drop = [x for x in range(min(4, k - g)) if x not in keep]
            d[i, [g + x for x in drop]] = 0.0
    d[2, :] = 0.0  # an empty row
    return CSR.from_dense(d)


def main(vid: str) -> int:
    from spmm_study import registry

    mats = edge_matrices()
    mats["nm24"] = nm24(7, 10, 1)
    mats["nm24_wide"] = nm24(3, 17, 2)
    v = registry.get(vid)
    failures = 0
    for params, names, ns in CASES[vid]:
        for name in names:
            for n in ns:
                t0 = time.perf_counter()
                try:
                    check_variant(v, mats[name], n, params, label=name)
                    status = "ok"
                except AssertionError as exc:
                    failures += 1
                    status = f"FAIL {exc}"
                except Exception as exc:  # noqa: BLE001
                    failures += 1
                    status = f"ERROR {type(exc).__name__}: {exc}"
                print(f"{vid} {params} {name} N={n}: {status} ({time.perf_counter() - t0:.1f}s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
