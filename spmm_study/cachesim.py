"""A small set-associative LRU cache simulator (issue 11): the traffic a loop nest *would* cause here.

The movement models (``movement.py``) count the loads a loop nest issues and assume no reuse through the
caches; the measurement shows what the hardware did. Between the two sits this simulator: it replays the
byte addresses a kernel touches (``spmm_study.cpu.traces`` builds them from the kernel's own loop nest) through
a hierarchy configured from this machine's caches (sysfs: size, ways, line size — what ``info`` reports) and
counts, per level, the misses and the bytes that crossed into it from below.

Model (each choice is a stated simplification, not a claim about the silicon):

* every level is set-associative with true LRU replacement; set = line mod sets (no hashing of L3 slices);
* a miss at level L looks in L+1, ..., memory, and the line is then installed in every level above the one
  that had it (inclusive fill, no back-invalidation);
* writes allocate (a store that misses reads the line first, as write-allocate caches do) and mark the line
  dirty; evicting a dirty line writes it into the level below (dirty there), the last level writes it to
  memory: ``writebacks`` of a level are those dirty evictions;
* one core, no prefetcher, no TLB, no other processes: on a real machine the hardware prefetcher hides most
  of the misses of a unit-stride stream (the time shows it, the miss count does not).

Bytes into level L from below are ``misses[L]·line``; bytes from L down are ``writebacks[L]·line``; the
last entry of ``bytes_in`` is what came from memory. Tested on hand-countable cases in tests/test_cachesim.py.
Compiled with numba, with a fast path for consecutive accesses to one L1 line: 66-94 ns per access on
mostly-hit traces and 350 ns on a miss-heavy one (CSR dot order), on the 2-core development VM while it was
shared (load average 11, 2026-12-01): 1-4 s for the 6-12 M accesses of a quick-mode lab run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spmm_study.errors import ParamError, ResourceError

MAX_ACCESSES = 80_000_000  # 1.3 GB of trace: past this a lab must simulate a smaller problem


@dataclass(frozen=True)
class CacheLevel:
    name: str
    size: int  # bytes
    ways: int
    line: int = 64

    def __post_init__(self):
        if self.line < 1 or self.line & (self.line - 1):
            raise ParamError(f"cache {self.name}: line size {self.line} must be a power of two")
        if self.ways < 1 or self.size < self.line * self.ways or self.size % (self.line * self.ways):
            raise ParamError(f"cache {self.name}: size {self.size} is not a multiple of ways {self.ways} x line {self.line}")

    @property
    def sets(self) -> int:
        return self.size // (self.line * self.ways)


@dataclass
class SimStats:
    levels: list[CacheLevel]
    accesses: int
    reads: int
    writes: int
    misses: list[int]  # per level: demand misses (read or write-allocate)
    writebacks: list[int]  # per level: dirty lines evicted to the level below (or memory)
    hits: list[int] = field(default_factory=list)

    @property
    def line(self) -> int:
        return self.levels[0].line

    @property
    def bytes_in(self) -> list[int]:
        """Bytes each level fetched from below: misses x line (the last one came from memory)."""
        return [m * lv.line for m, lv in zip(self.misses, self.levels)]

    @property
    def bytes_out(self) -> list[int]:
        return [w * lv.line for w, lv in zip(self.writebacks, self.levels)]

    @property
    def memory_bytes(self) -> int:
        """Traffic between the last level and memory: line fills plus dirty write-backs."""
        return self.bytes_in[-1] + self.bytes_out[-1]

    def traffic(self, i: int) -> int:
        """Bytes crossing the boundary below level ``i`` (fills into it plus its write-backs)."""
        return self.bytes_in[i] + self.bytes_out[i]

    def as_dict(self) -> dict:
        return {"accesses": self.accesses, "reads": self.reads, "writes": self.writes,
                **{f"{lv.name}_misses": m for lv, m in zip(self.levels, self.misses)},
                **{f"{lv.name}_writebacks": w for lv, w in zip(self.levels, self.writebacks)},
                "memory_bytes": self.memory_bytes}


def _sysfs_levels(base: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> list[CacheLevel]:
    found = []
    for idx in sorted(base.glob("index*")):
        try:
            kind = (idx / "type").read_text().strip()
            if kind == "Instruction":
                continue
            level = int((idx / "level").read_text())
            size_text = (idx / "size").read_text().strip().upper()
            ways = int((idx / "ways_of_associativity").read_text())
            line = int((idx / "coherency_line_size").read_text())
        except (OSError, ValueError):
            continue
        mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(size_text[-1:], 1)
        try:
            size = int(size_text.rstrip("KMG")) * mult
        except ValueError:
            continue
        if ways <= 0 or line <= 0:  # fully associative or unknown: treat as 16 ways
            ways = 16
        try:
            found.append((level, CacheLevel(f"L{level}", size, ways, line)))
        except ParamError:
            continue
    found.sort(key=lambda t: t[0])
    return [lv for _, lv in found]


DEFAULT_LEVELS = [CacheLevel("L1", 32 * 1024, 8), CacheLevel("L2", 1024 * 1024, 16), CacheLevel("L3", 32 * 1024 ** 2, 16)]


def machine_levels() -> tuple[list[CacheLevel], str]:
    """This machine's data caches from sysfs (L1d, L2, L3 of cpu0), and where they came from."""
    levels = _sysfs_levels()
    if levels:
        return levels, "sysfs (cpu0)"
    return list(DEFAULT_LEVELS), "defaults (sysfs unreadable): 32 KiB L1, 1 MiB L2, 32 MiB L3"


def describe_levels(levels: list[CacheLevel]) -> str:
    def size(b):
        return f"{b // 1024 ** 2} MiB" if b >= 1024 ** 2 and b % 1024 ** 2 == 0 else f"{b // 1024} KiB"

    return ", ".join(f"{lv.name} {size(lv.size)} {lv.ways}-way" for lv in levels) + f", {levels[0].line}-byte lines"


_KERNEL = None


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        from numba import njit

        @njit(cache=True)
        def sim(addrs, writes, shifts, nsets, ways, offs, tags, stamps, dirty, misses, wbs, hits):
            nl = nsets.size
            clock = 0
            last_line = -1  # the L1 line of the previous access: consecutive accesses to one line are the common case
            last_slot = -1
            for t in range(addrs.size):
                w = writes[t]
                line0 = addrs[t] >> shifts[0]
                if line0 == last_line and tags[last_slot] == line0:  # same line again: an L1 hit, no search
                    clock += 1
                    stamps[last_slot] = clock
                    hits[0] += 1
                    if w:
                        dirty[last_slot] = 1
                    continue
                level_hit = nl  # memory
                # look up each level until one holds the line
                for lv in range(nl):
                    line = addrs[t] >> shifts[lv]
                    s = line % nsets[lv]
                    found = -1
                    for q in range(ways[lv]):
                        if tags[offs[lv] + s * ways[lv] + q] == line:
                            found = q
                            break
                    clock += 1
                    if found >= 0:
                        stamps[offs[lv] + s * ways[lv] + found] = clock
                        hits[lv] += 1
                        if w and lv == 0:
                            dirty[offs[lv] + s * ways[lv] + found] = 1
                        if lv == 0:
                            last_line = line0
                            last_slot = offs[0] + s * ways[0] + found
                        level_hit = lv
                        break
                    misses[lv] += 1
                # install in every level above the one that had it, lowest first
                for lv in range(level_hit - 1, -1, -1):
                    line = addrs[t] >> shifts[lv]
                    cur_line = line
                    cur_dirty = 1 if (w and lv == 0) else 0
                    cl = lv
                    # insert (cur_line, cur_dirty) at level cl; a dirty victim cascades down as a write-back
                    while True:
                        s = cur_line % nsets[cl]
                        # already present (a write-back into a level that holds the line): mark dirty
                        present = -1
                        for q in range(ways[cl]):
                            if tags[offs[cl] + s * ways[cl] + q] == cur_line:
                                present = q
                                break
                        clock += 1
                        if present >= 0:
                            stamps[offs[cl] + s * ways[cl] + present] = clock
                            if cur_dirty:
                                dirty[offs[cl] + s * ways[cl] + present] = 1
                            break
                        victim = 0
                        oldest = stamps[offs[cl] + s * ways[cl] + 0]
                        for q in range(ways[cl]):
                            if tags[offs[cl] + s * ways[cl] + q] == -1:
                                victim = q
                                oldest = -1
                                break
                            if stamps[offs[cl] + s * ways[cl] + q] < oldest:
                                oldest = stamps[offs[cl] + s * ways[cl] + q]
                                victim = q
                        old_line = tags[offs[cl] + s * ways[cl] + victim]
                        old_dirty = dirty[offs[cl] + s * ways[cl] + victim]
                        tags[offs[cl] + s * ways[cl] + victim] = cur_line
                        stamps[offs[cl] + s * ways[cl] + victim] = clock
                        dirty[offs[cl] + s * ways[cl] + victim] = cur_dirty
                        if old_line == -1 or old_dirty == 0:
                            break
                        wbs[cl] += 1
                        if cl + 1 >= nl:
                            break  # written to memory
                        # the victim's line number at the next level (same line size: same number)
                        cur_line = (old_line << shifts[cl]) >> shifts[cl + 1]
                        cur_dirty = 1
                        cl = cl + 1
                if level_hit > 0:  # the line now sits in L1: remember where, for the fast path
                    s0 = line0 % nsets[0]
                    for q in range(ways[0]):
                        if tags[offs[0] + s0 * ways[0] + q] == line0:
                            last_line = line0
                            last_slot = offs[0] + s0 * ways[0] + q
                            break
            return clock

        _KERNEL = sim
    return _KERNEL


def simulate(addrs: np.ndarray, writes: np.ndarray | None = None, levels: list[CacheLevel] | None = None) -> SimStats:
    """Replay byte addresses (``writes``: 1 for a store) through ``levels`` (default: this machine's)."""
    addrs = np.ascontiguousarray(addrs, dtype=np.int64)
    if addrs.ndim != 1:
        raise ParamError("a trace is a 1-D array of byte addresses")
    if addrs.size > MAX_ACCESSES:
        raise ResourceError(f"a trace of {addrs.size:,} accesses is past the simulator's {MAX_ACCESSES:,}")
    if addrs.size and addrs.min() < 0:
        raise ParamError("trace addresses must be non-negative")
    if writes is None:
        writes = np.zeros(addrs.size, np.uint8)
    writes = np.ascontiguousarray(writes, dtype=np.uint8)
    if writes.shape != addrs.shape:
        raise ParamError(f"writes has {writes.size} entries for {addrs.size} addresses")
    levels = list(levels) if levels is not None else machine_levels()[0]
    if not levels:
        raise ParamError("no cache levels to simulate")
    shifts = np.array([int(lv.line).bit_length() - 1 for lv in levels], np.int64)
    nsets = np.array([lv.sets for lv in levels], np.int64)
    ways = np.array([lv.ways for lv in levels], np.int64)
    slots = nsets * ways
    offs = np.concatenate(([0], np.cumsum(slots)[:-1])).astype(np.int64)
    total = int(slots.sum())
    tags = np.full(total, -1, np.int64)
    stamps = np.zeros(total, np.int64)
    dirty = np.zeros(total, np.uint8)
    misses = np.zeros(len(levels), np.int64)
    wbs = np.zeros(len(levels), np.int64)
    hits = np.zeros(len(levels), np.int64)
    _kernel()(addrs, writes, shifts, nsets, ways, offs, tags, stamps, dirty, misses, wbs, hits)
    nw = int(writes.sum())
    return SimStats(levels=levels, accesses=int(addrs.size), reads=int(addrs.size) - nw, writes=nw,
                    misses=misses.tolist(), writebacks=wbs.tolist(), hits=hits.tolist())
