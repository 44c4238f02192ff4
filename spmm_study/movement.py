"""Data-movement models: pure functions of (Shape, params) returning the bytes each operand moves.

``compulsory`` is the floor: read A once (values, indices, offsets), read each *touched* row of B once,
write C once. Every variant also has a model of the traffic its loop nest generates *through the cache
hierarchy* (loads and stores the kernel issues, counting a re-read each time), so a student can set the
measured time beside what the loop order predicts. Each model's docstring states its assumption.

Functions take the problem's ``Shape`` and the variant's *resolved* params (every Param present: the harness
resolves them first) and return ``Bytes``; a model never repeats a Param's default.
"""

from __future__ import annotations

from dataclasses import dataclass

from spmm_study.conv import ConvShape, geometry_of
from spmm_study.problem import Shape


@dataclass(frozen=True)
class Bytes:
    a: float
    b: float
    c: float

    @property
    def total(self) -> float:
        return self.a + self.b + self.c


def csr_a_bytes(s: Shape) -> float:
    """A in CSR: values and column indices per nonzero, plus M+1 row offsets."""
    return s.nnz * (s.value_bytes + s.index_bytes) + (s.m + 1) * s.index_bytes


def dense_a_bytes(s: Shape) -> float:
    return s.m * s.k * s.value_bytes


def compulsory(s: Shape, params: dict | None = None) -> Bytes:
    """The floor: A once, the touched rows of B once, C written once (no cache can do better). For a
    convolution (``ConvShape``) B is the input, read once: the patch matrix is an artefact of im2col."""
    if isinstance(s, ConvShape):
        return conv_compulsory(s)
    return Bytes(csr_a_bytes(s), s.k_touched * s.n * s.value_bytes, s.m * s.n * s.value_bytes)


def dense_ijk(s: Shape, params: dict | None = None) -> Bytes:
    """i→j→k over dense A: for every (i, j) a row of A and a *column* of B (stride N) are read; with no
    reuse from the cache, B is read M times in full and A N times. C is written once (kept in a register)."""
    v = s.value_bytes
    return Bytes(s.m * s.n * s.k * v, s.m * s.n * s.k * v, s.m * s.n * v)


def csr_rowwise(s: Shape, params: dict | None = None) -> Bytes:
    """i→p→j over CSR: A is streamed once; each nonzero re-reads one row of B (N values); each row of C is
    written once. Reuse of B rows between nonzeros comes only from the caches, which this model ignores."""
    return Bytes(csr_a_bytes(s), s.nnz * s.n * s.value_bytes, s.m * s.n * s.value_bytes)


def dense_blas(s: Shape, params: dict | None = None) -> Bytes:
    """A tuned BLAS GEMM over dense A: assume ideal blocking, so each operand moves once (A dense: M·K)."""
    v = s.value_bytes
    return Bytes(s.m * s.k * v, s.k * s.n * v, s.m * s.n * v)


# ------------------------------------------------------------------------------------------ CPU ladder
# Assumption shared by the models below unless a docstring says otherwise: no reuse through the caches
# beyond what the loop nest keeps in registers (or in the tile it names), so a model counts the loads and
# stores the loop nest issues; a strided walk (stride != 1 element) moves a whole 64-byte line per element.

LINE_BYTES = 64


def _ceil_div(a: int, b: int) -> int:
    return -(-int(a) // max(1, int(b)))


def dense_order(s: Shape, params: dict) -> Bytes:
    """Dense GEMM in one of the six loop orders (``params['order']``). The innermost loop decides the traffic:
    k innermost (ijk, jik): a row of A (unit stride) and a column of B (stride N: a line per element) per
    (i, j), C kept in a register; j innermost (ikj, kij): a row of B and a row of C (read + write) per (i, k),
    both unit stride; i innermost (jki, kji): a column of A and a column of C (both strided) per (j, k)."""
    order = params["order"]
    v = s.value_bytes
    line = max(v, LINE_BYTES)
    m, k, n = s.m, s.k, s.n
    inner = order[-1]
    if inner == "k":
        return Bytes(m * n * k * v, m * n * k * line, m * n * v)
    if inner == "j":
        return Bytes(m * k * v, m * k * n * v, 2 * m * k * n * v)
    return Bytes(n * k * m * line, k * n * v, 2 * m * k * n * line)


def dense_tiled(s: Shape, params: dict) -> Bytes:
    """Dense GEMM blocked ti×tk×tj with i→k→j inside a tile: a tile of A is reused across tj columns, a tile of
    B across ti rows, and the C tile is read+written once per k-tile: A·ceil(N/tj), B·ceil(M/ti), 2·C·ceil(K/tk)."""
    ti, tj, tk = params["tile_i"], params["tile_j"], params["tile_k"]
    v = s.value_bytes
    return Bytes(s.m * s.k * v * _ceil_div(s.n, tj), s.k * s.n * v * _ceil_div(s.m, ti),
                 2 * s.m * s.n * v * _ceil_div(s.k, tk))


def csr_dot(s: Shape, params: dict | None = None) -> Bytes:
    """i→j→p over CSR (dot products): the row's nonzeros are re-read for each of the N columns, and each
    B[k, j] is a strided access (a whole line per value); C[i, j] is written once from a register."""
    line = max(s.value_bytes, LINE_BYTES)
    return Bytes(s.n * s.nnz * (s.value_bytes + s.index_bytes) + (s.m + 1) * s.index_bytes,
                 s.nnz * s.n * line, s.m * s.n * s.value_bytes)


def b_copy_bytes(s: Shape, params: dict) -> float:
    """The copy of B a register-blocked CPU rung makes with ``pack_b`` (read + write K·N values): only when
    B is not 64-byte aligned (``cpu._simd.packed_operand``). ``Problem.make`` aligns B, so through the tool
    the copy never happens; a B handed in from elsewhere may need it (the result's info says ``b_packed``)."""
    return 2 * s.k * s.n * s.value_bytes if params["pack_b"] and not s.b_aligned else 0


def csr_tiled(s: Shape, params: dict) -> Bytes:
    """CSR register-blocked over N: A (values + indices) read once per column tile, ceil(N/tile_n) times;
    one tile-row of B per nonzero per tile (nnz·N values in all); C written once (accumulated in registers);
    plus the copy of a misaligned B (``b_copy_bytes``)."""
    tiles = _ceil_div(s.n, params["tile_n"])
    return Bytes(tiles * s.nnz * (s.value_bytes + s.index_bytes) + (s.m + 1) * s.index_bytes,
                 s.nnz * s.n * s.value_bytes + b_copy_bytes(s, params), s.m * s.n * s.value_bytes)


def coo_scatter(s: Shape, params: dict | None = None) -> Bytes:
    """COO scatter: per nonzero its (row, col, value) triplet, one row of B, and one row of C read and written
    (C is zeroed first: one more write of C)."""
    v = s.value_bytes
    return Bytes(s.nnz * (v + 2 * s.index_bytes), s.nnz * s.n * v, (2 * s.nnz + s.m) * s.n * v)


def csc_outer(s: Shape, params: dict | None = None) -> Bytes:
    """k→p→j outer products over CSC: each touched row of B is read once and reused (from L1) for every nonzero
    of its column of A; each nonzero reads and writes one row of C (plus zeroing C once)."""
    v = s.value_bytes
    return Bytes(s.nnz * (v + s.index_bytes) + (s.k + 1) * s.index_bytes, s.k_touched * s.n * v,
                 (2 * s.nnz + s.m) * s.n * v)


def sell(s: Shape, params: dict) -> Bytes:
    """SELL-C-σ: like the register-blocked CSR kernel, but every row of a slice of C rows is padded to the
    slice's longest row. The padding depends on the row lengths, which ``Shape`` does not carry: this model
    assumes none (a lower bound); the real padding ratio is in the result's ``info`` (``padding``). Plus the
    copy of a misaligned B (``b_copy_bytes``)."""
    v = s.value_bytes
    c_rows = params["c"]
    return Bytes(s.nnz * (v + s.index_bytes) + 2 * _ceil_div(s.m, c_rows) * s.index_bytes + s.m * s.index_bytes,
                 s.nnz * s.n * v + b_copy_bytes(s, params), s.m * s.n * v)


def bsr(s: Shape, params: dict) -> Bytes:
    """BSR with br×bc blocks: every stored block moves br·bc values and one index, reads bc rows of B and
    updates br rows of C (kept in L1 across a block row). Block count depends on the pattern; this model takes
    the worst case of one nonzero per block, min(nnz, blocks in the grid); the real fill is in ``info``."""
    br, bc = params["br"], params["bc"]
    v = s.value_bytes
    blocks = min(s.nnz, _ceil_div(s.m, br) * _ceil_div(s.k, bc))
    return Bytes(blocks * (br * bc * v + s.index_bytes) + (_ceil_div(s.m, br) + 1) * s.index_bytes,
                 blocks * bc * s.n * v, s.m * s.n * v)


def nm_structured(s: Shape, params: dict) -> Bytes:
    """2:4 compressed: exactly K/2 values per row (zeros padded in) plus 2 bits of position each; each stored
    value reads one row of B; C written once (register-blocked); plus the copy of a misaligned B
    (``b_copy_bytes``)."""
    v = s.value_bytes
    stored = s.m * 2 * _ceil_div(s.k, 4)
    return Bytes(stored * v + stored / 4, stored * s.n * v + b_copy_bytes(s, params), s.m * s.n * v)


def csr_codegen(s: Shape, params: dict | None = None) -> Bytes:
    """Code-specialised CSR: the column indices are constants in the instruction stream (not counted as data;
    the code size is in ``info``); the values are loaded once per vector of columns; B and C as row-wise."""
    v = s.value_bytes
    return Bytes(s.nnz * v * _ceil_div(s.n, 16), s.nnz * s.n * v, s.m * s.n * v)


# ------------------------------------------------------------------------------------------ convolutions
# Sparse convolutions (docs/conv.md). B's column is "the operand that is not the weights": the input image
# and whatever copy of it the variant makes (the padded input, the patch matrix). For a plain SpMM shape the
# geometry is the 1×1 convolution it is (``conv.geometry_of``): no padding, no replication.


def conv_compulsory(s: Shape, params: dict | None = None) -> Bytes:
    """The floor of a convolution: the weights once (CSR), every input value once, C written once. The
    patch matrix is not in it: it repeats each input value up to kh·kw times."""
    g = geometry_of(s)
    return Bytes(csr_a_bytes(s), g.input_values() * s.value_bytes, s.m * s.n * s.value_bytes)


def conv_pad_bytes(s: Shape) -> float:
    """Refreshing the zero-padded input: read x, write its interior (0 without padding: no copy is made)."""
    g = geometry_of(s)
    return 2 * g.input_values() * s.value_bytes if g.pad else 0


def conv_im2col(s: Shape, params: dict) -> Bytes:
    """Explicit im2col then the tiled CSR SpMM (rung 13's model): the input read once, the K×N patch matrix
    written once (the replication: kh·kw/stride² times the input), then read like any B (one tile-row per
    nonzero per tile: nnz·N values); A read once per column tile; C written once."""
    g = geometry_of(s)
    v = s.value_bytes
    tiles = _ceil_div(s.n, params["tile_n"])
    patch = g.patch_values() * v
    return Bytes(tiles * s.nnz * (v + s.index_bytes) + (s.m + 1) * s.index_bytes,
                 g.input_values() * v + patch + s.nnz * s.n * v, s.m * s.n * v)


def conv_fused(s: Shape, params: dict) -> Bytes:
    """im2col fused into the SpMM: the patch matrix is never written; each nonzero gathers its tile of
    patch values from the padded input (nnz·N values, as im2col's read of B, but gathered) through an index
    map of N pixel offsets (8 bytes each) read once per row pass; the padded copy refreshed each call."""
    v = s.value_bytes
    tiles = _ceil_div(s.n, params["tile_n"])
    return Bytes(tiles * s.nnz * (v + s.index_bytes) + (s.m + 1) * s.index_bytes,
                 s.nnz * s.n * v + s.m * s.n * 8 + conv_pad_bytes(s), s.m * s.n * v)


def conv_im2col_tiled(s: Shape, params: dict) -> Bytes:
    """im2col one tile at a time: the K × tile_n patch tile gathered once (K·N values in all, the index map
    beside), then read like rung 13's B from L2 (nnz·N values); A once per tile; C once; the padded copy."""
    g = geometry_of(s)
    v = s.value_bytes
    tiles = _ceil_div(s.n, params["tile_n"])
    return Bytes(tiles * s.nnz * (v + s.index_bytes) + (s.m + 1) * s.index_bytes,
                 g.patch_values() * (2 * v + 8) + s.nnz * s.n * v + conv_pad_bytes(s), s.m * s.n * v)


def conv_direct(s: Shape, params: dict | None = None) -> Bytes:
    """Direct sparse convolution (Escoin / SkimCaffe): each nonzero weight w(o, c, r, s) adds w times the
    input plane of channel c shifted by (r, s) into the output plane o: nnz·N input values read, and the
    output plane read and written once per nonzero (it stays in L1: Ho·Wo values), C zeroed once; A once."""
    v = s.value_bytes
    return Bytes(csr_a_bytes(s), s.nnz * s.n * v + conv_pad_bytes(s), (2 * s.nnz + s.m) * s.n * v)


def conv_direct_tiled(s: Shape, params: dict) -> Bytes:
    """Direct convolution with the output in registers: each tile of output pixels is accumulated in
    registers over the row's nonzeros, each nonzero a contiguous shifted window of the padded input
    (nnz·N values); A read once per tile; C written once."""
    v = s.value_bytes
    tiles = _ceil_div(s.n, params["tile_n"])
    return Bytes(tiles * s.nnz * (v + s.index_bytes) + (s.m + 1) * s.index_bytes,
                 s.nnz * s.n * v + conv_pad_bytes(s), s.m * s.n * v)


def conv_dense_gemm(s: Shape, params: dict | None = None) -> Bytes:
    """Dense im2col + BLAS GEMM: the input read once and the patch matrix written; then an ideally blocked
    GEMM over the dense weights (out × in·kh·kw: zeros included) and the patch matrix; C written once."""
    g = geometry_of(s)
    v = s.value_bytes
    patch = g.patch_values() * v
    return Bytes(s.m * s.k * v, g.input_values() * v + 2 * patch, s.m * s.n * v)


def conv_library(s: Shape, params: dict | None = None) -> Bytes:
    """A library convolution (oneDNN, cuDNN) on dense weights: assume each operand moves once (its own
    blocking, Winograd or implicit GEMM: unknown to us); the weights dense."""
    g = geometry_of(s)
    v = s.value_bytes
    return Bytes(s.m * s.k * v, g.input_values() * v, s.m * s.n * v)
