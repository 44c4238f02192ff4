"""The rule ``cpu.csr.auto`` follows at 2 threads, written by experiments/cpu_auto_fit.py — do not edit by hand.

Fitted 2026-12-02 on Intel(R) Xeon(R) Processor (2 cores), 2 threads, least wall time, warm, min of 7 calls, on 40 layer-0 DLMC matrices
(every other one of each shape, by path); held out: 40 (the others).
Score = geometric mean over (matrix, N) of best candidate time / chosen candidate time:
fitting set 0.911 (best picked 37%), held out 0.873 (best picked 32%);
always one candidate, held out: vec max_vectors=16 0.831, vec max_vectors=8 0.848, rowblock rows=0 0.754, rowblock rows=2 0.748, panel max_vectors=4 0.770, panel max_vectors=8 0.807, panel max_vectors=2 0.666.
"""

RULE = [
    {
        "n_max": 16.5,
        "choice": "rowblock rows=2",
        "row_mean_below": 102.4,
        "choice_short": "panel max_vectors=8"
    },
    {
        "n_max": 24.5,
        "choice": "rowblock rows=2",
        "row_mean_below": 51.2,
        "choice_short": "panel max_vectors=2"
    },
    {
        "n_max": 32.5,
        "choice": "panel max_vectors=8"
    },
    {
        "n_max": 41.0,
        "choice": "vec max_vectors=16"
    },
    {
        "n_max": 56.5,
        "choice": "panel max_vectors=4",
        "row_mean_below": 41.0,
        "choice_short": "vec max_vectors=8"
    },
    {
        "n_max": 64.5,
        "choice": "panel max_vectors=4",
        "row_mean_below": 25.6,
        "choice_short": "vec max_vectors=16"
    },
    {
        "n_max": 82.5,
        "choice": "vec max_vectors=16"
    },
    {
        "n_max": 114.0,
        "choice": "rowblock rows=0",
        "row_mean_below": 41.0,
        "choice_short": "vec max_vectors=16"
    },
    {
        "n_max": 128.5,
        "choice": "panel max_vectors=8",
        "row_mean_below": 25.6,
        "choice_short": "vec max_vectors=8"
    },
    {
        "n_max": 162.5,
        "choice": "vec max_vectors=16"
    },
    {
        "n_max": 226.0,
        "choice": "vec max_vectors=8",
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=16"
    },
    {
        "n_max": 256.5,
        "choice": "vec max_vectors=8",
        "col_mean_below": 25.6,
        "choice_short": "rowblock rows=2"
    },
    {
        "n_max": 384.5,
        "choice": "panel max_vectors=8",
        "col_mean_below": 41.0,
        "choice_short": "vec max_vectors=8"
    },
    {
        "n_max": 768.0,
        "choice": "panel max_vectors=8",
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=8"
    },
    {
        "n_max": 1536.0,
        "choice": "panel max_vectors=4",
        "col_mean_below": 25.6,
        "choice_short": "vec max_vectors=16"
    },
    {
        "n_max": float("inf"),
        "choice": "panel max_vectors=4",
        "col_mean_below": 25.6,
        "choice_short": "vec max_vectors=16"
    }
]
