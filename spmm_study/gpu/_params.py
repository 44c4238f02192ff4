"""The launch Params the GPU rungs share, made in one place (as ``cpu/balance.py`` makes ``balance``).

A rung passes its default and, where its kernel allows fewer values, its choices; the name, the domain
(``minimum``) and the meaning live here, so ``vec`` means the same thing in every rung and a sweep over
``vec`` tries the same values everywhere.
"""

from __future__ import annotations

from spmm_study.registry import Param


def vec(default: int = 4, help: str = "B values per load (4: one 16-byte load; float64 allows ≤ 2)") -> Param:
    return Param("vec", default, (1, 2, 4), help, minimum=1, maximum=8)


def tiles(default: int = 1, choices: tuple = (1, 2, 4)) -> Param:
    return Param("tiles", default, choices, "vec-groups per lane: accumulators per thread = vec·tiles", minimum=1,
                 maximum=16)


def unroll(default: int = 4, choices: tuple = (1, 2, 4, 8),
           help: str = "nonzeros per loop iteration (their B loads in flight before the first FMA)") -> Param:
    return Param("unroll", default, choices, help, minimum=1, maximum=32)


def threads(default: int = 128, choices: tuple = (64, 128, 256), help: str = "threads per block") -> Param:
    return Param("threads", default, choices, help, minimum=1, maximum=1024)  # CUDA: 1024 per block


def lanes(default: int = 16, choices: tuple = (4, 8, 16, 32),
          help: str = "threads per row (a power of two ≤ 32)") -> Param:
    return Param("lanes", default, choices, help, minimum=1, maximum=32)  # one warp


def block_x(default: int, choices: tuple, help: str = "threads along N") -> Param:
    return Param("block_x", default, choices, help, minimum=1, maximum=1024)


def block_y(default: int, choices: tuple, help: str) -> Param:
    return Param("block_y", default, choices, help, minimum=1, maximum=1024)


def warps(default: int, choices: tuple, help: str) -> Param:
    return Param("warps", default, choices, help, minimum=1, maximum=32)  # 1024 threads


def conv_block() -> tuple[Param, ...]:
    """The launch of the direct convolution rungs 61 and 62: ``threads`` threads of ``pixels`` output pixels
    each (a thread's pixels ``threads`` apart); the ranges are the kernels' limits (pixels: accumulators)."""
    return (threads(128, (64, 128, 256)),
            Param("pixels", 2, (1, 2, 4), "output pixels per thread", minimum=1, maximum=16))


def row_group() -> tuple[Param, ...]:
    """The launch of the subwarp row kernel (rungs 14, 15 and the fused rung 51): ``lanes`` threads per row,
    ``tiles`` vec-groups each; one default set, so these rungs compare like with like."""
    return (lanes(), vec(), tiles(2), unroll(), threads())
