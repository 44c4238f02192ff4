"""The rule ``cpu.csr.auto`` follows at 2 threads, written by experiments/cpu_auto_fit.py — do not edit by hand.

Fitted 2026-12-08 on AMD EPYC (2 cores), 2 threads, least wall time, warm, min of 5 calls, on 8 layer-0 DLMC matrices
(every 5th of 80 by path, every other one of each shape, by path; N 16, 17, 32, 33, 49, 64, 65, 100, 128, 129, 196, 256, 257, 512, 1024, 2048, 4096); held out: 8 (the others) — whole matrices (load average 1.0 at the end).
Score = geometric mean over (matrix, N) of best candidate time / chosen candidate time:
fitting set 0.986 (best picked 66%), held out 0.975 (best picked 55%);
held out with inspection (the fastest of the rule's top 3 kept): 0.995 (best picked 71%);
always one candidate, held out: vec max_vectors=16 0.953, vec max_vectors=8 0.946, rowblock rows=0 0.868, rowblock rows=2 0.848, panel max_vectors=4 0.775, panel max_vectors=8 0.820, panel max_vectors=2 0.727.
"""

RULE = [
    {
        "n_max": 16.5,
        "choice": "rowblock rows=2",
        "ranked": [
            "rowblock rows=2",
            "panel max_vectors=2",
            "panel max_vectors=8",
            "rowblock rows=0",
            "vec max_vectors=16",
            "vec max_vectors=8",
            "panel max_vectors=4"
        ],
        "row_mean_below": 51.2,
        "choice_short": "panel max_vectors=2",
        "ranked_short": [
            "panel max_vectors=2",
            "panel max_vectors=4",
            "panel max_vectors=8",
            "rowblock rows=2",
            "rowblock rows=0",
            "vec max_vectors=8",
            "vec max_vectors=16"
        ]
    },
    {
        "n_max": 24.5,
        "choice": "rowblock rows=0",
        "ranked": [
            "rowblock rows=0",
            "rowblock rows=2",
            "panel max_vectors=2",
            "panel max_vectors=8",
            "panel max_vectors=4",
            "vec max_vectors=8",
            "vec max_vectors=16"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=16",
        "ranked_short": [
            "vec max_vectors=16",
            "vec max_vectors=8",
            "rowblock rows=2",
            "rowblock rows=0",
            "panel max_vectors=2",
            "panel max_vectors=4",
            "panel max_vectors=8"
        ]
    },
    {
        "n_max": 32.5,
        "choice": "panel max_vectors=2",
        "ranked": [
            "panel max_vectors=2",
            "panel max_vectors=4",
            "panel max_vectors=8",
            "rowblock rows=0",
            "rowblock rows=2",
            "vec max_vectors=16",
            "vec max_vectors=8"
        ]
    },
    {
        "n_max": 41.0,
        "choice": "rowblock rows=0",
        "ranked": [
            "rowblock rows=0",
            "panel max_vectors=8",
            "panel max_vectors=4",
            "rowblock rows=2",
            "vec max_vectors=16",
            "vec max_vectors=8",
            "panel max_vectors=2"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=8",
        "ranked_short": [
            "vec max_vectors=8",
            "vec max_vectors=16",
            "rowblock rows=2",
            "rowblock rows=0",
            "panel max_vectors=4",
            "panel max_vectors=8",
            "panel max_vectors=2"
        ]
    },
    {
        "n_max": 56.5,
        "choice": "rowblock rows=0",
        "ranked": [
            "rowblock rows=0",
            "rowblock rows=2",
            "vec max_vectors=8",
            "vec max_vectors=16",
            "panel max_vectors=2",
            "panel max_vectors=4",
            "panel max_vectors=8"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=8",
        "ranked_short": [
            "vec max_vectors=8",
            "vec max_vectors=16",
            "rowblock rows=2",
            "rowblock rows=0",
            "panel max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=4"
        ]
    },
    {
        "n_max": 64.5,
        "choice": "rowblock rows=0",
        "ranked": [
            "rowblock rows=0",
            "rowblock rows=2",
            "panel max_vectors=8",
            "panel max_vectors=4",
            "vec max_vectors=8",
            "vec max_vectors=16",
            "panel max_vectors=2"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=8",
        "ranked_short": [
            "vec max_vectors=8",
            "panel max_vectors=8",
            "vec max_vectors=16",
            "panel max_vectors=4",
            "rowblock rows=0",
            "rowblock rows=2",
            "panel max_vectors=2"
        ]
    },
    {
        "n_max": 82.5,
        "choice": "rowblock rows=0",
        "ranked": [
            "rowblock rows=0",
            "vec max_vectors=8",
            "vec max_vectors=16",
            "rowblock rows=2",
            "panel max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=4"
        ]
    },
    {
        "n_max": 114.0,
        "choice": "rowblock rows=0",
        "ranked": [
            "rowblock rows=0",
            "rowblock rows=2",
            "vec max_vectors=16",
            "vec max_vectors=8",
            "panel max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=4"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=16",
        "ranked_short": [
            "vec max_vectors=16",
            "vec max_vectors=8",
            "rowblock rows=0",
            "rowblock rows=2",
            "panel max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=4"
        ]
    },
    {
        "n_max": 128.5,
        "choice": "rowblock rows=0",
        "ranked": [
            "rowblock rows=0",
            "rowblock rows=2",
            "panel max_vectors=8",
            "vec max_vectors=8",
            "vec max_vectors=16",
            "panel max_vectors=2",
            "panel max_vectors=4"
        ],
        "row_mean_below": 51.2,
        "choice_short": "panel max_vectors=8",
        "ranked_short": [
            "panel max_vectors=8",
            "vec max_vectors=8",
            "vec max_vectors=16",
            "rowblock rows=0",
            "rowblock rows=2",
            "panel max_vectors=2",
            "panel max_vectors=4"
        ]
    },
    {
        "n_max": 162.5,
        "choice": "vec max_vectors=8",
        "ranked": [
            "vec max_vectors=8",
            "rowblock rows=2",
            "rowblock rows=0",
            "vec max_vectors=16",
            "panel max_vectors=4",
            "panel max_vectors=2",
            "panel max_vectors=8"
        ]
    },
    {
        "n_max": 226.0,
        "choice": "vec max_vectors=16",
        "ranked": [
            "vec max_vectors=16",
            "rowblock rows=0",
            "rowblock rows=2",
            "vec max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=8",
            "panel max_vectors=4"
        ]
    },
    {
        "n_max": 256.5,
        "choice": "rowblock rows=2",
        "ranked": [
            "rowblock rows=2",
            "vec max_vectors=16",
            "rowblock rows=0",
            "vec max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=8",
            "panel max_vectors=4"
        ]
    },
    {
        "n_max": 384.5,
        "choice": "panel max_vectors=2",
        "ranked": [
            "panel max_vectors=2",
            "panel max_vectors=8",
            "vec max_vectors=16",
            "rowblock rows=2",
            "rowblock rows=0",
            "panel max_vectors=4",
            "vec max_vectors=8"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=8",
        "ranked_short": [
            "vec max_vectors=8",
            "vec max_vectors=16",
            "rowblock rows=2",
            "rowblock rows=0",
            "panel max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=4"
        ]
    },
    {
        "n_max": 768.0,
        "choice": "panel max_vectors=2",
        "ranked": [
            "panel max_vectors=2",
            "panel max_vectors=8",
            "panel max_vectors=4",
            "vec max_vectors=8",
            "vec max_vectors=16",
            "rowblock rows=0",
            "rowblock rows=2"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=16",
        "ranked_short": [
            "vec max_vectors=16",
            "rowblock rows=0",
            "vec max_vectors=8",
            "rowblock rows=2",
            "panel max_vectors=2",
            "panel max_vectors=8",
            "panel max_vectors=4"
        ]
    },
    {
        "n_max": 1536.0,
        "choice": "panel max_vectors=2",
        "ranked": [
            "panel max_vectors=2",
            "panel max_vectors=8",
            "panel max_vectors=4",
            "vec max_vectors=8",
            "vec max_vectors=16",
            "rowblock rows=2",
            "rowblock rows=0"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=16",
        "ranked_short": [
            "vec max_vectors=16",
            "vec max_vectors=8",
            "rowblock rows=2",
            "panel max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=4",
            "rowblock rows=0"
        ]
    },
    {
        "n_max": 3072.0,
        "choice": "panel max_vectors=8",
        "ranked": [
            "panel max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=4",
            "vec max_vectors=16",
            "vec max_vectors=8",
            "rowblock rows=2",
            "rowblock rows=0"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=16",
        "ranked_short": [
            "vec max_vectors=16",
            "vec max_vectors=8",
            "panel max_vectors=4",
            "panel max_vectors=2",
            "rowblock rows=2",
            "panel max_vectors=8",
            "rowblock rows=0"
        ]
    },
    {
        "n_max": float("inf"),
        "choice": "panel max_vectors=8",
        "ranked": [
            "panel max_vectors=8",
            "panel max_vectors=2",
            "panel max_vectors=4",
            "vec max_vectors=16",
            "vec max_vectors=8",
            "rowblock rows=2",
            "rowblock rows=0"
        ],
        "row_mean_below": 51.2,
        "choice_short": "vec max_vectors=16",
        "ranked_short": [
            "vec max_vectors=16",
            "vec max_vectors=8",
            "panel max_vectors=4",
            "panel max_vectors=2",
            "panel max_vectors=8",
            "rowblock rows=2",
            "rowblock rows=0"
        ]
    }
]
