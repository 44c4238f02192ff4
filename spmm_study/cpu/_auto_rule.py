"""The rule ``cpu.csr.auto`` follows, written by experiments/cpu_auto_fit.py — do not edit by hand.

Fitted 2026-12-02 on Intel(R) Xeon(R) Processor (2 cores), one thread, warm, min of 7 calls, on 40 layer-0 DLMC matrices
(every other one of each shape, by path); held out: 40 (the others).
Score = geometric mean over (matrix, N) of best candidate time / chosen candidate time:
fitting set 0.949 (best picked 42%), held out 0.945 (best picked 42%);
always one candidate, held out: vec max_vectors=16 0.867, vec max_vectors=8 0.870, rowblock rows=0 0.822, rowblock rows=2 0.810, panel max_vectors=4 0.780, panel max_vectors=8 0.794, panel max_vectors=2 0.695.
"""

RULE = [
    {
        "n_max": 16.5,
        "choice": "rowblock rows=0"
    },
    {
        "n_max": 24.5,
        "choice": "rowblock rows=2"
    },
    {
        "n_max": 32.5,
        "choice": "panel max_vectors=2"
    },
    {
        "n_max": 41.0,
        "choice": "vec max_vectors=8"
    },
    {
        "n_max": 56.5,
        "choice": "vec max_vectors=8"
    },
    {
        "n_max": 64.5,
        "choice": "panel max_vectors=4"
    },
    {
        "n_max": 82.5,
        "choice": "vec max_vectors=8"
    },
    {
        "n_max": 114.0,
        "choice": "vec max_vectors=8"
    },
    {
        "n_max": 128.5,
        "choice": "panel max_vectors=8",
        "col_mean_below": 41.0,
        "choice_short": "vec max_vectors=8"
    },
    {
        "n_max": 162.5,
        "choice": "vec max_vectors=8"
    },
    {
        "n_max": 226.0,
        "choice": "vec max_vectors=16"
    },
    {
        "n_max": 256.5,
        "choice": "vec max_vectors=16"
    },
    {
        "n_max": 384.5,
        "choice": "vec max_vectors=8"
    },
    {
        "n_max": 768.0,
        "choice": "panel max_vectors=8",
        "row_mean_below": 51.2,
        "choice_short": "rowblock rows=0"
    },
    {
        "n_max": 1536.0,
        "choice": "panel max_vectors=4"
    },
    {
        "n_max": float("inf"),
        "choice": "panel max_vectors=4"
    }
]
