"""Sparse convolution problems (docs/conv.md): a pruned filter bank applied to a batch of images.

A convolution layer with ``out`` filters of ``in × kh × kw`` weights is, written as a matrix, an SpMM:
the weights are A (``out × in·kh·kw``, one filter per row, columns in the order channel → filter row →
filter column, as ``torch``'s ``weight.reshape(out, -1)``), and B is the *patch matrix* of the input: one
column per output pixel holding the ``in·kh·kw`` input values its filter window covers (im2col). A 1×1
convolution needs no patches (B is the input itself, channels × pixels: plain SpMM); a 3×3 one repeats
every input value up to nine times in B. That replication is the lesson of the ``cpu.conv.*`` and
``gpu.conv.*`` ladders, which compute the same C three ways: materialising B (``im2col``), gathering it on
the fly (``im2col_fused``) and never forming it at all (``direct``).

How it fits the harness (docs/ARCHITECTURE.md §5): ``ConvProblem`` is a ``Problem`` whose B is never
built. A is the weight CSR, ``x`` the seeded input (batch × in × H × W, NCHW), and C is the SpMM's C:
``out × (batch·Ho·Wo)``, columns in (image, output row, output column) order — NCHW for batch 1. Its
``reference`` is a float64 *direct* convolution (numpy, one tensordot per filter tap, not im2col), checked
like every product (poisoned C, Frobenius and per-entry bounds from ``|W| * |x|``). The shape's N is
batch·Ho·Wo, so GFLOP/s are the useful flops of the sparse product, 2·nnz·N (taps that fall on the
zero padding included, as in the im2col GEMM). Every conv variant also takes a plain SpMM ``Problem``, as
the 1×1 convolution it is (``conv_view``), so the registry's edge grid checks them on every edge matrix.

A ``conv:`` matrix spec names the geometry and the weights:
``conv:56x56,pad=1,stride=1,batch=1,kernel=3x3:dlmc:rn50/magnitude_pruning/0.9/bottleneck_2_block_group1_1_1``
(``conv:56:...`` is a 56×56 image; defaults kernel 3x3, pad kernel//2, stride 1, batch 1). The weights are
any matrix spec whose columns are a multiple of kh·kw; the input channels are columns / (kh·kw).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from spmm_study.errors import ParamError, ResourceError, SourceError, SpmmError
from spmm_study.formats import CSR
from spmm_study.memory import available_memory_bytes
from spmm_study.problem import MAX_N, Problem, Shape, parse_dtype
from spmm_study.seeding import check_seed, seeded_b

SCHEME = "conv"
MAX_SIDE = 1 << 15  # an image side, a batch, a kernel side past this is a typo, refused before any arithmetic
GEOMETRY_KEYS = ("kernel", "pad", "stride", "batch")


@dataclass(frozen=True)
class Geometry:
    """A convolution's sizes: ``batch`` images of ``c`` channels, ``h × w`` pixels, ``kh × kw`` filters."""

    h: int
    w: int
    kh: int = 3
    kw: int = 3
    pad: int = 1
    stride: int = 1
    batch: int = 1
    c: int = 0  # input channels: known once the weights are loaded (columns / (kh·kw))

    @property
    def ho(self) -> int:
        return (self.h + 2 * self.pad - self.kh) // self.stride + 1

    @property
    def wo(self) -> int:
        return (self.w + 2 * self.pad - self.kw) // self.stride + 1

    @property
    def n(self) -> int:
        """Columns of the patch matrix and of C: one per output pixel of every image."""
        return self.batch * self.ho * self.wo

    @property
    def taps(self) -> int:
        return self.kh * self.kw

    @property
    def k(self) -> int:
        return self.c * self.taps

    @property
    def hp(self) -> int:
        return self.h + 2 * self.pad

    @property
    def wp(self) -> int:
        return self.w + 2 * self.pad

    def text(self) -> str:
        """The canonical geometry of a ``conv:`` spec (every field written out)."""
        return (f"{self.h}x{self.w},kernel={self.kh}x{self.kw},pad={self.pad},stride={self.stride},"
                f"batch={self.batch}")

    def input_values(self) -> int:
        return self.batch * self.c * self.h * self.w

    def patch_values(self) -> int:
        """Values of the im2col patch matrix (K × N): each input value repeated once per filter tap it meets."""
        return self.k * self.n

    def inflation(self) -> float:
        """How many times larger the patch matrix is than the input (≈ kh·kw/stride² for large images)."""
        inp = self.input_values()
        return self.patch_values() / inp if inp else float("nan")


def _int(text: str, what: str, lo: int) -> int:
    if not re.fullmatch(r"\d{1,9}", text.strip()):
        raise SourceError(f"conv spec: {what} {text!r} is not a whole number")
    val = int(text)
    if not lo <= val <= MAX_SIDE:
        raise SourceError(f"conv spec: {what} = {val} is outside {lo}..{MAX_SIDE}")
    return val


def _pair(text: str, what: str) -> tuple[int, int]:
    a, x, b = text.strip().lower().partition("x")
    if not x:
        v = _int(a, what, 1)
        return v, v
    return _int(a, what, 1), _int(b, what, 1)


def parse_geometry(text: str) -> Geometry:
    """``56x56,pad=1,stride=1,batch=1,kernel=3x3`` (or ``56``) → Geometry without channels; checked."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not parts[0]:
        raise SourceError("conv spec needs an image size, e.g. conv:56x56,pad=1:<weights spec>")
    h, w = _pair(parts[0], "image size")
    opts: dict[str, str] = {}
    for p in parts[1:]:
        key, eq, val = p.partition("=")
        key = key.strip()
        if not eq or key not in GEOMETRY_KEYS:
            raise SourceError(f"conv spec: unknown option {p!r} (known: {', '.join(k + '=' for k in GEOMETRY_KEYS)})")
        if key in opts:
            raise SourceError(f"conv spec: {key} given twice")
        opts[key] = val
    kh, kw = _pair(opts["kernel"], "kernel") if "kernel" in opts else (3, 3)
    pad = _int(opts["pad"], "pad", 0) if "pad" in opts else kh // 2
    stride = _int(opts["stride"], "stride", 1) if "stride" in opts else 1
    batch = _int(opts["batch"], "batch", 1) if "batch" in opts else 1
    g = Geometry(h=h, w=w, kh=kh, kw=kw, pad=pad, stride=stride, batch=batch)
    if g.hp < kh or g.wp < kw:
        raise SourceError(f"conv spec: a {kh}x{kw} filter does not fit a {h}x{w} image padded by {pad}")
    if pad >= max(kh, kw):
        raise SourceError(f"conv spec: pad = {pad} must be smaller than the {kh}x{kw} filter (wider padding only "
                          "adds output pixels that see nothing but zeros)")
    if g.n > MAX_N:
        raise SourceError(f"conv spec: {g.batch}x{g.ho}x{g.wo} = {g.n} output pixels is past the limit of {MAX_N}")
    return g


def split_spec(spec: str) -> tuple[Geometry, str]:
    """``conv:GEOMETRY:WEIGHTS`` → (geometry, weights spec)."""
    scheme, _, rest = spec.partition(":")
    if scheme != SCHEME:
        raise SourceError(f"{spec!r} is not a conv: spec")
    geom, sep, weights = rest.partition(":")
    if not sep or not weights:
        raise SourceError(f"conv spec {spec!r} must be conv:<HxW[,pad=P,stride=S,batch=B,kernel=3x3]>:<weights spec>")
    if weights.startswith(SCHEME + ":"):
        raise SourceError(f"conv spec {spec!r}: the weights cannot be another conv: spec")
    return parse_geometry(geom), weights


def is_conv_spec(spec: str) -> bool:
    return spec.startswith(SCHEME + ":")


def spec_n(spec: str) -> int:
    """N of a ``conv:`` spec (batch·Ho·Wo), from the text alone (the planner needs it before loading)."""
    return split_spec(spec)[0].n


def with_channels(g: Geometry, a: CSR) -> Geometry:
    """The geometry for weights ``a`` (out × in·kh·kw): the columns must be a whole number of filter taps."""
    if a.k % g.taps:
        raise SourceError(f"conv weights have {a.k} columns, not a multiple of the {g.kh}x{g.kw} = {g.taps} filter "
                          f"taps (columns are input channels × kh × kw)")
    from dataclasses import replace

    return replace(g, c=a.k // g.taps)


def estimate_bytes(g: Geometry, m: int, nnz: int, dtype) -> int:
    """Host memory at the peak of a conv measurement: the input with its float64 and padded copies, C and the
    harness's copies and check buffers (as ``problem.estimate_bytes``), the dense float64 weights and their
    absolute values (the reference), and the largest variant buffer, the im2col patch matrix (K × N)."""
    isz = np.dtype(dtype).itemsize
    inp = g.batch * g.c * g.hp * g.wp
    return (inp * (2 * isz + 16) + m * g.n * (2 * isz + 48) + m * g.k * 16 + g.k * g.n * isz
            + nnz * (isz + 24))


def check_size(g: Geometry, m: int, nnz: int, dtype, fraction: float = 0.8) -> None:
    """Refuse before allocating: a convolution past this machine's free memory."""
    need = estimate_bytes(g, m, nnz, dtype)
    avail = available_memory_bytes()
    if need > fraction * avail:
        raise ResourceError(f"convolution {g.text()} with {g.c} input and {m} output channels needs about "
                            f"{need / 2**30:.1f} GiB; {avail / 2**30:.1f} GiB is available")


@dataclass(frozen=True)
class ConvShape(Shape):
    """``Shape`` (M = out channels, K = in·kh·kw, N = batch·Ho·Wo) plus the geometry the conv models need."""

    batch: int = 1
    c: int = 0
    h: int = 1
    w: int = 1
    kh: int = 1
    kw: int = 1
    pad: int = 0
    stride: int = 1

    @property
    def geometry(self) -> Geometry:
        return Geometry(h=self.h, w=self.w, kh=self.kh, kw=self.kw, pad=self.pad, stride=self.stride,
                        batch=self.batch, c=self.c)


def geometry_of(s: Shape) -> Geometry:
    """The convolution a shape describes: its own for a ``ConvShape``, else the 1×1 convolution that a plain
    SpMM is (K channels, one image of 1 × N pixels)."""
    if isinstance(s, ConvShape):
        return s.geometry
    return Geometry(h=1, w=s.n, kh=1, kw=1, pad=0, stride=1, batch=1, c=s.k)


class _NoB:
    """A conv problem's B: the patch matrix is never built, so an SpMM variant asking for it is refused
    (a SKIP row), never handed a wrong operand."""

    def __getattr__(self, name):
        raise SpmmError("this is a convolution problem (conv: spec): it has no dense B; run a cpu.conv.* or "
                        "gpu.conv.* variant")

    def __getitem__(self, item):
        return self.__getattr__("item")

    def __array__(self, *args, **kwargs):
        return self.__getattr__("array")


NO_B = _NoB()


@dataclass(eq=False)
class ConvProblem(Problem):
    """Weights A (CSR, out × in·kh·kw), input ``x`` (batch × in × H × W), ``geom``; C is out × batch·Ho·Wo."""

    x: np.ndarray = None
    geom: Geometry = None

    def __post_init__(self):
        g = self.geom
        if g is None or self.x is None:
            raise ParamError("a convolution problem needs its geometry and input")
        if self.a.k != g.k:
            raise ParamError(f"shape mismatch: the weights have {self.a.k} columns; {g.c} channels × {g.kh}x{g.kw} "
                             f"taps is {g.k}")
        if self.x.shape != (g.batch, g.c, g.h, g.w):
            raise ParamError(f"shape mismatch: the input is {'x'.join(map(str, self.x.shape))}; expected "
                             f"{g.batch}x{g.c}x{g.h}x{g.w} (batch x channels x H x W)")
        if self.x.dtype != self.a.dtype:
            raise ParamError(f"dtype mismatch: the weights are {self.a.dtype}, the input {self.x.dtype}")
        if not self.x.flags.c_contiguous:
            self.x = np.ascontiguousarray(self.x)
        if not np.isfinite(self.x).all():
            raise ParamError("the input holds NaN or Inf values")
        self.b = NO_B

    @classmethod
    def make(cls, a: CSR, geom: Geometry, dtype="float32", seed: int = 0, matrix: str = "") -> "ConvProblem":
        from spmm_study import tiny

        a, geom = tiny.conv(a, geom)  # as given, or fewer filters on a smaller image under SPMM_STUDY_TINY=1
        dtype = parse_dtype(dtype)
        seed = check_seed(seed)
        g = with_channels(geom, a)
        check_size(g, a.m, a.nnz, dtype)
        if a.nnz and dtype.itemsize < a.dtype.itemsize and float(np.abs(a.data).max()) > float(np.finfo(dtype).max):
            raise ParamError(f"a weight does not fit {dtype}; use --dtype float64")
        x = seeded_b(g.batch * g.c, g.h * g.w, seed, dtype).reshape(g.batch, g.c, g.h, g.w)
        return cls(a.astype(dtype), NO_B, seed=seed, matrix=matrix, x=x, geom=g)

    @property
    def n(self) -> int:
        return self.geom.n

    @cached_property
    def shape(self) -> ConvShape:
        g = self.geom
        k_touched = int(np.unique(self.a.indices).size) if self.a.nnz else 0
        return ConvShape(
            m=self.m, k=self.k, n=g.n, nnz=self.a.nnz, k_touched=k_touched,
            rows_nonempty=int(np.count_nonzero(np.diff(self.a.indptr))),
            value_bytes=self.dtype.itemsize, index_bytes=self.a.indices.dtype.itemsize,
            batch=g.batch, c=g.c, h=g.h, w=g.w, kh=g.kh, kw=g.kw, pad=g.pad, stride=g.stride)

    def _direct64(self, absolute: bool) -> np.ndarray:
        w = self.a.astype(np.float64).to_dense()
        x = self.x.astype(np.float64)
        if absolute:
            w, x = np.abs(w), np.abs(x)
        return direct_conv64(w, x, self.geom)

    @cached_property
    def reference(self) -> np.ndarray:
        """C in float64 by a direct convolution (one tensordot per filter tap over shifted input windows)."""
        return self._direct64(False)

    @cached_property
    def bound_scale(self) -> np.ndarray:
        """(|W| * |x|) in float64: the scale of each output's rounding error."""
        return self._direct64(True)


def direct_conv64(w: np.ndarray, x: np.ndarray, g: Geometry) -> np.ndarray:
    """float64 direct convolution: ``w`` (out × in·kh·kw, dense), ``x`` (batch × in × H × W) → out × batch·Ho·Wo.

    For each filter tap (r, s) the input window shifted by (r, s) and strided is multiplied by that tap's
    weights (out × in) and added: no patch matrix. A zero weight contributes an exact zero, so an empty filter
    gives exact zeros, as the sparse semantics demand."""
    m = w.shape[0]
    w4 = w.reshape(m, g.c, g.kh, g.kw)
    xp = np.pad(x, ((0, 0), (0, 0), (g.pad, g.pad), (g.pad, g.pad)))
    out = np.zeros((m, g.batch, g.ho, g.wo))
    for r in range(g.kh):
        for s in range(g.kw):
            win = xp[:, :, r:r + g.stride * (g.ho - 1) + 1:g.stride, s:s + g.stride * (g.wo - 1) + 1:g.stride]
            out += np.tensordot(w4[:, :, r, s], win, axes=([1], [1]))
    return out.reshape(m, g.n)


def conv_view(problem) -> tuple[Geometry, np.ndarray]:
    """(geometry, input x as batch × C × H × W) of any problem: a ``ConvProblem``'s own, or a plain SpMM
    problem as a 1×1 convolution (x = B viewed as one image of K channels × 1 × N pixels; no copy)."""
    if isinstance(problem, ConvProblem):
        return problem.geom, problem.x
    g = Geometry(h=1, w=problem.n, kh=1, kw=1, pad=0, stride=1, batch=1, c=problem.k)
    return g, problem.b.reshape(1, problem.k, 1, problem.n)


def tap_offsets(g: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each weight column k = (channel, r, s): its channel, its filter row r and column s (int64)."""
    k = np.arange(g.k, dtype=np.int64)
    return k // g.taps, (k // g.kw) % g.kh, k % g.kw


@dataclass
class _Padded:
    """The zero-padded input buffer (batch × C × Hp × Wp) a kernel reads shifted windows from; its border is
    zeroed once here, its interior refreshed from x at each call (``refresh``, timed: the input may change)."""

    x: np.ndarray
    g: Geometry
    slack: int = 0  # zero elements after the last plane: a kernel's last vector may read past the last pixel
    buf: np.ndarray = field(init=False)
    flat: np.ndarray = field(init=False)  # the whole buffer, slack included, flat

    def __post_init__(self):
        from spmm_study.memory import aligned_full

        g = self.g
        size = g.batch * g.c * g.hp * g.wp
        self.flat = aligned_full((1, size + self.slack), 0.0, self.x.dtype).reshape(-1)
        self.buf = self.flat[:size].reshape(g.batch, g.c, g.hp, g.wp)

    def refresh(self) -> None:
        g = self.g
        if g.pad == 0:
            np.copyto(self.buf, self.x)
        else:
            self.buf[:, :, g.pad:g.pad + g.h, g.pad:g.pad + g.w] = self.x


def padded(x: np.ndarray, g: Geometry, slack: int = 0) -> _Padded:
    return _Padded(x, g, slack)


def conv_info(g: Geometry, value_bytes: int) -> dict:
    """The replication facts every conv row carries: input, patch matrix and their ratio."""
    return {"geometry": g.text(), "channels_in": g.c, "input_bytes": g.input_values() * value_bytes,
            "patch_bytes": g.patch_values() * value_bytes, "inflation": round(g.inflation(), 3)}


def _filters(m: int, c: int, taps: int, density: float, seed: int, empty=()) -> CSR:
    rng = np.random.default_rng(seed)
    w = np.where(rng.random((m, c * taps)) < density, rng.standard_normal((m, c * taps)), 0.0)
    for r in empty:
        w[r] = 0.0
    return CSR.from_dense(w.astype(np.float32))


def edge_convolutions() -> dict[str, tuple[CSR, Geometry]]:
    """Small convolutions that hit the corners, for every conv variant (tests, ``check``): odd image sizes,
    padding 0 and 1, stride 1 and 2, several images, one input channel, empty and all-zero filter banks, a
    fully dense filter, a 1×1 and a non-square filter."""
    g = Geometry
    return {
        "odd_pad1": (_filters(5, 3, 9, 0.5, 1), g(h=7, w=5, pad=1)),
        "odd_pad0_stride2": (_filters(4, 2, 9, 0.6, 2), g(h=9, w=7, pad=0, stride=2)),
        "pad1_stride2_batch2": (_filters(3, 2, 9, 0.5, 3), g(h=8, w=6, pad=1, stride=2, batch=2)),
        "one_channel": (_filters(3, 1, 9, 0.7, 4), g(h=6, w=6, pad=1)),
        "empty_filters": (_filters(6, 2, 9, 0.4, 5, empty=(0, 3, 5)), g(h=5, w=9, pad=1, batch=2)),
        "all_zero": (_filters(3, 2, 9, 0.0, 6), g(h=4, w=4, pad=1)),
        "dense_filter": (_filters(4, 3, 9, 1.0, 7), g(h=11, w=10, pad=1)),
        "wide_image": (_filters(2, 2, 9, 0.5, 8), g(h=3, w=70, pad=1)),
        "kernel_1x1": (_filters(4, 5, 1, 0.5, 9), g(h=5, w=6, kh=1, kw=1, pad=0)),
        "kernel_3x1_stride2": (_filters(3, 2, 3, 0.7, 10), g(h=7, w=6, kh=3, kw=1, pad=1, stride=2)),
    }


def edge_problem(name: str, dtype="float32", seed: int = 0) -> ConvProblem:
    a, g = edge_convolutions()[name]
    return ConvProblem.make(a, g, dtype, seed, matrix=f"conv-edge:{name}")


# ----------------------------------------------------------------------------------------------- offsets the kernels share


def tap_deltas(g, sizes_hw: tuple[int, int]) -> np.ndarray:
    """For each weight column k = (channel c, r, s): its offset in one image of the padded input
    (c·Hp·Wp + r·Wp + s), uint64 so the kernels' index arithmetic has no negative-index wraparound."""
    hp, wp = sizes_hw
    k = np.arange(g.k, dtype=np.int64)
    c, r, s = k // g.taps, (k // g.kw) % g.kh, k % g.kw
    return (c * hp * wp + r * wp + s).astype(np.uint64)


def pixel_offsets(g) -> np.ndarray:
    """Where each output pixel's window starts in the flat padded input (uint64, (image, row, column) order)."""
    b = np.arange(g.batch, dtype=np.int64)[:, None, None] * (g.c * g.hp * g.wp)
    oh = np.arange(g.ho, dtype=np.int64)[None, :, None] * (g.stride * g.wp)
    ow = np.arange(g.wo, dtype=np.int64)[None, None, :] * g.stride
    return (b + oh + ow).reshape(-1).astype(np.uint64)
