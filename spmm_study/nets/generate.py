"""Networks structurally equivalent to the Sparse DNN challenge's (RadiX-Net-like), with float64 truth.

The official networks (1024, 4096, 16384, 65536 neurons; 120, 480, 1920 layers) are RadiX-Net graphs:
every layer has exactly 32 nonzeros per row and per column, all 1/16, built from radix butterfly blocks with
a fresh permutation of rows and columns. Only the 1024-neuron one is at hand here; this module builds the
others' structural equivalent (same counts, same values, same bias rule), not the official files:

* layer l uses the butterfly stage of stride ``t`` (cycling through 1, 32, 32², ... while 32·t divides n):
  output neuron i connects to the 32 inputs j in the same block of 32·t neurons with j ≡ i (mod t);
  for t = 1 that is a block-diagonal of dense 32×32 blocks, for larger t the blocks interleave;
* then a fresh random permutation of the rows and one of the columns (P·B_t·Q keeps 32 per row and column);
* bias −0.3, −0.35, −0.4, −0.45 for 1024, 4096, 16384, 65536 neurons (``spdnn.BIAS``); any n divisible by 32
  is accepted (tests use 64 and 128), with the bias of the nearest official size below it;
* inputs: images with the official density (about 106 nonzeros per 1024 neurons, value 1); the density of
  each image is drawn around that mean (Beta-distributed) so that some images stay alive through the layers
  and others die, as the official ones do.

Truth: the categories of the float64 scipy chain (``chain.reference_categories``), not an official file.
"""

from __future__ import annotations

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.formats import CSR
from spmm_study.nets.spdnn import BIAS, Network, check_fits

DEGREE = 32
VALUE = 1.0 / 16.0
INPUT_DENSITY = 106.0 / 1024.0


def strides(n: int) -> list[int]:
    """Butterfly strides usable for n neurons: t with DEGREE·t dividing n (1, 32, ... and n/32)."""
    out, t = [], 1
    while DEGREE * t <= n:
        if n % (DEGREE * t) == 0:
            out.append(t)
        t *= DEGREE
    last = n // DEGREE
    if last not in out and n % DEGREE == 0:
        out.append(last)
    return out


def butterfly(n: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the stride-t butterfly stage: 32 per row and per column."""
    i = np.arange(n, dtype=np.int64)
    block = i // (DEGREE * t)
    lane = i % t
    base = block * DEGREE * t + lane
    rows = np.repeat(i, DEGREE)
    cols = (base[:, None] + t * np.arange(DEGREE)[None, :]).ravel()
    return rows, cols


def bias_for(n: int) -> float:
    sizes = [s for s in sorted(BIAS) if s <= n]
    return BIAS[sizes[-1]] if sizes else BIAS[min(BIAS)]


def check_neurons(n: int) -> None:
    if n < DEGREE or n % DEGREE:
        raise ParamError(f"a generated network needs a multiple of {DEGREE} neurons (>= {DEGREE}), got {n}")


def layer(n: int, l: int, rng: np.random.Generator, dtype=np.float32) -> CSR:
    """Layer ``l`` (0-based): a permuted butterfly stage, as A = Wᵀ (the orientation of the chain)."""
    ts = strides(n)
    rows, cols = butterfly(n, ts[l % len(ts)])
    p = rng.permutation(n)
    q = rng.permutation(n)
    r, c = p[rows], q[cols]
    order = np.lexsort((c, r))
    r, c = r[order], c[order]
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return CSR((n, n), indptr, c.astype(np.int32), np.full(r.size, VALUE, dtype=dtype))


def network(n: int, layers: int, seed: int = 0, dtype=np.float32, batch: int = 1) -> Network:
    """A RadiX-Net-like network of ``layers`` layers of ``n`` neurons (memory checked before building)."""
    check_neurons(n)
    if layers < 1:
        raise ParamError(f"--layers {layers} must be at least 1")
    check_fits(n, [n] * layers, DEGREE * n * layers, batch, f"a generated {n}-neuron network of {layers} layers",
               np.dtype(dtype).itemsize)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5DA]))
    mats = [layer(n, l, rng, dtype) for l in range(layers)]
    bias = np.full(n, bias_for(n), dtype=dtype)
    return Network(mats, [bias] * layers, name=f"generated:{n}x{layers}:seed={seed}",
                   meta={"neurons": n, "seed": seed, "generated": True})


def inputs(n: int, count: int, seed: int = 0, dtype=np.float32) -> CSR:
    """``count`` images of ``n`` neurons, value 1, mean density 106/1024 (per-image density Beta(2, 17.3))."""
    check_neurons(n)
    if count < 1:
        raise ParamError(f"the number of inputs must be at least 1, got {count}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A6]))
    a, mean = 2.0, INPUT_DENSITY
    dens = rng.beta(a, a * (1 - mean) / mean, size=count)
    per = np.maximum(1, np.round(dens * n)).astype(np.int64)
    indptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(per, out=indptr[1:])
    cols = np.concatenate([np.sort(rng.choice(n, size=int(k), replace=False)) for k in per])
    return CSR((count, n), indptr, cols.astype(np.int64), np.ones(cols.size, dtype=dtype)).validate()
