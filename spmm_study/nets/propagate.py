"""Sparsity propagation across a chain of sparse layers (SparTA's rules, Zheng et al., OSDI'22).

A chain ``y_{l+1} = act_l(A_l·y_l + b_l)`` (A_l out × in) carries dead structure that no single layer shows:

* **forward** — an output neuron whose weight row is empty has a constant pre-activation: its bias under
  the ``row`` rule, 0 under the challenge's ``nonzero`` rule or with no bias; through the activation it is
  the constant c = act(b) (or act(0)). If c = 0 the neuron is dead: its row goes, and so does the column
  of the next layer that reads it. If c ≠ 0 (row rule) it is folded into the next layer's bias
  (b' = b + A_{l+1}[:, i]·c, exact arithmetic up to one rounding) and the row and column go all the same;
* **backward** — a neuron whose outgoing weights (a column of the next layer) are all zero is never read:
  its incoming row and bias go; an input feature no row of the first layer reads is dropped from x.
  The last layer's outputs are the network's outputs and always stay.

Each removal can empty another row or column, so the two passes repeat to a fixed point. Removing a zero
term from a sum leaves it bit for bit the same, so without folded constants the shrunk chain's outputs are
*identical* to the full chain's; with folding they agree to float64 rounding (``check`` says which).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from spmm_study.errors import ParamError
from spmm_study.formats import CSR
from spmm_study.epilogue import Epilogue
from spmm_study.memory import aligned_empty


@dataclass
class Layer:
    a: CSR  # out × in
    bias: np.ndarray  # per output row
    act: str = "relu"
    rule: str = "row"
    ymax: float = 32.0

    def constant(self, i: int) -> float:
        """The value of output i when its row is empty."""
        ep = Epilogue(self.act, self.rule, self.ymax, self.bias)
        z = np.zeros((1, 1))
        b = np.array([float(self.bias[i]) if self.rule == "row" else 0.0])
        return float(ep.apply(z, b)[0, 0])


@dataclass
class Shrunk:
    layers: list[Layer]
    keep: list[np.ndarray]  # keep[l]: indices of level l kept (level 0 = input features, level L = outputs)
    folded: int = 0  # constants folded into a following bias
    rounds: int = 0
    removed: dict = field(default_factory=dict)


def _sub(a: CSR, rows: np.ndarray, cols: np.ndarray) -> CSR:
    sp = a.to_scipy().tocsr()[rows][:, cols].tocsr()
    sp.sort_indices()
    return CSR.from_scipy(sp)


def _check_chain(layers: list[Layer]) -> None:
    if not layers:
        raise ParamError("propagation needs at least one layer")
    for l in range(1, len(layers)):
        if layers[l].a.k != layers[l - 1].a.m:
            raise ParamError(f"layer {l + 1} takes {layers[l].a.k} inputs but layer {l} gives {layers[l - 1].a.m}")


def propagate(layers: list[Layer], fold: bool = True, max_rounds: int = 1000) -> Shrunk:
    """Forward and backward passes to a fixed point; returns the shrunk chain and what it keeps.

    Each pass over a layer is linear in its size, however many neurons die in it: the dead rows or columns
    are zeroed through one mask over the nonzeros (copying the whole layer once per dead neuron took past a
    minute for 16,383 dead rows), and a constant is folded through its own column's nonzeros only."""
    _check_chain(layers)
    mats = [l.a.to_scipy().tocsr().astype(np.float64) for l in layers]
    biases = [np.asarray(l.bias, dtype=np.float64).copy() for l in layers]
    L = len(layers)
    alive = [np.ones(layers[0].a.k, bool)] + [np.ones(l.a.m, bool) for l in layers]
    folded = 0
    rounds = 0
    changed = True
    while changed and rounds < max_rounds:
        changed = False
        rounds += 1
        for l in range(L - 1):  # forward: empty rows are constants (the outputs, level L, stay constant or not)
            empty = np.flatnonzero(alive[l + 1] & (np.diff(mats[l].indptr) == 0))
            if empty.size == 0:
                continue
            consts = constants(layers[l], empty)
            nxt = layers[l + 1]
            foldable = fold and nxt.rule == "row"
            dead = empty if foldable else empty[consts == 0.0]  # a constant that cannot be folded stays
            if foldable and (consts != 0.0).any():
                csc = mats[l + 1].tocsc()
                for i, c in zip(empty[consts != 0.0], consts[consts != 0.0]):
                    lo, hi = csc.indptr[i], csc.indptr[i + 1]  # its column's nonzeros: b' = b + A[:, i]·c
                    biases[l + 1][csc.indices[lo:hi]] += csc.data[lo:hi] * c
                    folded += 1
            if dead.size:
                alive[l + 1][dead] = False
                mats[l + 1] = _zero_cols(mats[l + 1], dead)
                changed = True
        for l in range(L - 1, 0, -1):  # backward: a level-l neuron nobody reads (l < L)
            a_next = mats[l]
            read = np.zeros(a_next.shape[1], bool)
            read[a_next.indices[a_next.data != 0]] = True
            dead = np.flatnonzero(alive[l] & ~read)
            if dead.size:
                alive[l][dead] = False
                mats[l - 1] = _zero_rows(mats[l - 1], dead)
                changed = True
        a0 = mats[0]  # an input feature no row of the first layer reads
        read0 = np.zeros(a0.shape[1], bool)
        read0[a0.indices[a0.data != 0]] = True
        dead0 = alive[0] & ~read0
        if dead0.any():
            alive[0] &= read0
            changed = True
    keep = [np.flatnonzero(m) for m in alive]
    out_layers = []
    removed = {"rows": 0, "cols": 0, "nnz": 0}
    for l, lay in enumerate(layers):
        a = _sub(CSR.from_scipy(mats[l]), keep[l + 1], keep[l]).astype(lay.a.dtype)
        removed["rows"] += lay.a.m - a.m
        removed["cols"] += lay.a.k - a.k
        removed["nnz"] += lay.a.nnz - a.nnz
        out_layers.append(Layer(a, biases[l][keep[l + 1]].astype(np.asarray(lay.bias).dtype), lay.act, lay.rule,
                                lay.ymax))
    return Shrunk(out_layers, keep, folded, rounds, removed)


def constants(layer: Layer, rows: np.ndarray) -> np.ndarray:
    """``Layer.constant`` of every row in ``rows`` at once (float64): act of the bias (rule row) or of 0."""
    ep = Epilogue(layer.act, layer.rule, layer.ymax, layer.bias)
    b = np.asarray(layer.bias, dtype=np.float64)[rows] if layer.rule == "row" else np.zeros(rows.size)
    return ep.apply(np.zeros((rows.size, 1)), b)[:, 0]


def _zero_cols(a, cols: np.ndarray):
    """``a`` (CSR) without the nonzeros of columns ``cols``: one mask over the nonzeros, O(nnz + K)."""
    drop = np.zeros(a.shape[1], bool)
    drop[cols] = True
    a = a.copy()
    a.data[drop[a.indices]] = 0
    a.eliminate_zeros()
    return a


def _zero_rows(a, rows: np.ndarray):
    """``a`` (CSR) without the nonzeros of rows ``rows``: O(nnz + M)."""
    drop = np.zeros(a.shape[0], bool)
    drop[rows] = True
    a = a.copy()
    a.data[np.repeat(drop, np.diff(a.indptr))] = 0
    a.eliminate_zeros()
    return a


def evaluate(layers: list[Layer], x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The chain on dense x (features × N) in ``dtype`` with scipy: the float64 check of equality."""
    y = np.asarray(x, dtype=dtype)
    for lay in layers:
        z = np.asarray(lay.a.astype(dtype).to_scipy() @ y)
        ep = Epilogue(lay.act, lay.rule, lay.ymax, lay.bias)
        y = ep.apply(z, np.asarray(lay.bias, dtype=dtype))
    return y


def check(full: list[Layer], shrunk: Shrunk, x: np.ndarray) -> dict:
    """Outputs of the full and shrunk chains on x in float64: bitwise equal, or (with folded constants) the
    largest relative difference."""
    y_full = evaluate(full, x)
    y_shr = evaluate(shrunk.layers, np.asarray(x)[shrunk.keep[0]])
    same = bool(np.array_equal(y_full, y_shr))
    scale = float(np.abs(y_full).max()) if y_full.size else 0.0
    rel = float(np.abs(y_full - y_shr).max() / scale) if scale > 0 else float(np.abs(y_full - y_shr).max(initial=0))
    return {"identical": same, "max_rel_diff": rel}


def report(full: list[Layer], shrunk: Shrunk, n: int, repeats: int = 5, seed: int = 0) -> dict:
    """What was removed (rows, columns, nonzeros, FLOPs and bytes at N columns) and the measured speedup of
    the shrunk chain over the full one with the fused CPU kernel (float32, fastest of ``repeats`` interleaved runs)."""
    from spmm_study.cpu.k50_csr_tiled_fused import FusedLayer

    from spmm_study.limits import check_alloc

    widest = max([full[0].a.k, *(l.a.m for l in full)])
    # x and the float64 check (two chains' widest activations), then two float32 chains of buffers
    check_alloc(8 * n * (full[0].a.k + 4 * widest) + 8 * n * (full[0].a.k + sum(l.a.m for l in full)),
                f"propagate at N = {n}")
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_normal((full[0].a.k, n)))
    chk = check(full, shrunk, x)
    nnz_full = sum(l.a.nnz for l in full)
    nnz_shr = sum(l.a.nnz for l in shrunk.layers)
    act_full = sum(l.a.m for l in full) * n * 4
    act_shr = sum(l.a.m for l in shrunk.layers) * n * 4

    def wbytes(ls):
        return sum(l.a.nnz * 8 + (l.a.m + 1) * 4 + l.a.m * 4 for l in ls)

    def chain_of(ls, xin):
        fl = [FusedLayer(l.a.astype(np.float32), l.bias, l.act, l.rule, l.ymax) for l in ls]
        bufs = [aligned_empty((ls[0].a.k, n), np.float32)] + [aligned_empty((l.a.m, n), np.float32) for l in ls]
        bufs[0][...] = xin  # 64-byte aligned like every B the harness gives: a misaligned one costs 1.4x

        def run():
            t0 = time.perf_counter()
            for i, f in enumerate(fl):
                f(bufs[i], bufs[i + 1])
            return time.perf_counter() - t0

        run()  # compile / warm
        return run, bufs

    run_full, bufs_full = chain_of(full, x)
    if shrunk.removed["nnz"] == 0 and shrunk.removed["rows"] == 0 and shrunk.removed["cols"] == 0:
        t = float(np.min([run_full() for _ in range(repeats)]))  # nothing removed: the same chain
        t_full, t_shr, y_full, y_shr = t, t, bufs_full[-1], bufs_full[-1]
    else:
        run_shr, bufs_shr = chain_of(shrunk.layers, x[shrunk.keep[0]])
        # interleaved, and the minimum: on a shared machine noise only ever adds time, in bursts that move
        # a median of a few millisecond-long runs by 3x (seen on the 2-core VM with 7 helpers)
        pairs = [(run_full(), run_shr()) for _ in range(repeats)]
        t_full = float(np.min([p[0] for p in pairs]))
        t_shr = float(np.min([p[1] for p in pairs]))
        y_full, y_shr = bufs_full[-1], bufs_shr[-1]
    return {
        **shrunk.removed, "rounds": shrunk.rounds, "folded": shrunk.folded,
        "nnz_before": nnz_full, "nnz_after": nnz_shr,
        "flops_removed": 2 * (nnz_full - nnz_shr) * n,
        "bytes_removed": (wbytes(full) - wbytes(shrunk.layers)) + (act_full - act_shr),
        "time_full_s": t_full, "time_shrunk_s": t_shr, "speedup": t_full / t_shr if t_shr > 0 else float("nan"),
        "float32_same": bool(np.array_equal(y_full, y_shr)), **chk,
    }


def layers_for(matrices, net_spec, root, layers, bias: float, last_act: str, dlmc_root=None) -> tuple[list[Layer], str]:
    """The chain ``propagate`` works on: matrix specs (relu hidden layers with ``bias``, the last one
    ``last_act``: an FFN block) or a challenge / generated network (its own epilogue)."""
    if bool(matrices) == bool(net_spec):
        raise ParamError("give either --matrix specs or --net")
    if matrices:
        from spmm_study import sources

        mats = [sources.load(spec, dlmc_root=dlmc_root).a.astype(np.float32) for spec in matrices]
        out = [Layer(a, np.full(a.m, bias, np.float32), "relu", "row") for a in mats]
        out[-1] = Layer(mats[-1], np.zeros(mats[-1].m, np.float32), last_act, "row")
        _check_chain(out)
        return out, " -> ".join(spec.rsplit("/", 1)[-1] for spec in matrices)
    from spmm_study.nets import generate, infer, spdnn

    kind, args = infer.parse_net(net_spec)
    if kind == "generated":
        network = generate.network(args["neurons"], layers or args["layers"], seed=args["seed"])
    else:
        network = spdnn.load_network(infer.spdnn_root(root), args["neurons"], layers)
    return [Layer(a, b, network.act, network.rule, network.ymax) for a, b in zip(network.layers, network.biases)], \
        network.name
