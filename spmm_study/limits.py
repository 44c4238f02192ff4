"""Stated maxima of every size that comes from an option or a file, checked before anything is allocated or
expanded (issue 23 item 3; docs/ARCHITECTURE.md §9).

A number a user types (``--batch 1000000000``, ``--layers``, ``generated:32x1000000000``, ``--repeats``) or a
file holds (an image index, a grid of 3000 × 3000 × 10000 rounds, a TOML nested thousands deep) is checked
three ways, in this order, by the command that reads it:

1. against int64 and the stated maximum below (a count past it is a typo, not a plan);
2. what it would cost, against ``memory.available_memory_bytes`` (free memory within RLIMIT_AS and the
   cgroup) — ``check_alloc``;
3. only then is anything allocated, expanded or parsed further.

Each refusal is one ``ParamError`` / ``ResourceError`` line naming the option and the limit.
"""

from __future__ import annotations

import re

from spmm_study.errors import ParamError, ResourceError
from spmm_study.memory import available_memory_bytes

INT64_MAX = 2**63 - 1
MAX_REPEATS = 10_000  # timed repeats of infer / propagate (run and sweep: timing.MAX_COUNT, the same)
MAX_LAYERS = 100_000  # layers of a network (the challenge's deepest has 1920)
MAX_NEURONS = 2**31 - 1  # int32 indices of the layers
MAX_BATCH = 100_000_000  # inputs of infer (the challenge's largest batch is 60,000 images)
MAX_IMAGES = 10_000_000  # images an inputs TSV may index (the challenge's files hold 60,000)
MAX_PARTS = 1024  # processes of infer --parts
MAX_N = 1 << 24  # columns of B / activations (propagate --n)
MAX_TASKS = 200_000  # measurements one experiment plans (grid × rounds): a week at a second each
MAX_DEPTH = 64  # nesting of a TOML or JSON input file (ours nest 3 deep)
EXPERIMENT_BYTES = 4 << 20  # an experiment or cluster TOML (ours are a few KiB)


def check_count(value, what: str, maximum: int, minimum: int = 1) -> int:
    """``value`` as an int in [minimum, maximum] (int64 first), or one ParamError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(f"{what} {value!r} is not a whole number")
    if value < minimum:
        raise ParamError(f"{what} {value} must be at least {minimum}")
    if value > INT64_MAX:
        raise ParamError(f"{what} {value} is past int64")
    if value > maximum:
        raise ParamError(f"{what} {value:,} is past the limit of {maximum:,}")
    return value


def check_alloc(nbytes: float, what: str, fraction: float = 0.8) -> None:
    """Refuse ``what`` when the ``nbytes`` it would allocate pass ``fraction`` of the memory this process may
    still use (RLIMIT_AS, the cgroup, the machine's free memory)."""
    avail = available_memory_bytes()
    if nbytes > fraction * avail:
        raise ResourceError(f"{what} needs about {nbytes / 2**30:.2f} GiB; {avail / 2**30:.2f} GiB is available")


_STRINGS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'')


def nesting_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } in a JSON or TOML text, strings left out (a TOML table header
    ``[a.b]`` counts 1). numpy over the bytes: linear and fast for the 64 MiB a JSON input may have."""
    import numpy as np

    if "[" not in text and "{" not in text:
        return 0
    bare = _STRINGS.sub("", text) if ('"' in text or "'" in text) else text
    b = np.frombuffer(bare.encode("utf-8", "replace"), np.uint8)
    step = (b == ord("[")).astype(np.int32) + (b == ord("{")) - (b == ord("]")) - (b == ord("}"))
    return int(np.cumsum(step).max(initial=0))


def check_depth(text: str, where: str, error: type[Exception] = ParamError, limit: int = MAX_DEPTH) -> None:
    """A text nested past ``limit`` is refused before a recursive parser (json, tomllib) meets it: one line,
    not a RecursionError."""
    depth = nesting_depth(text)
    if depth > limit:
        raise error(f"{where} is nested {depth:,} deep; at most {limit} levels are read")
