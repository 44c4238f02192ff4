"""Sparsity propagation (issue 16 item 5) on hand-made chains whose dead structure is known, on random
chains (outputs equal to the unshrunk chain in float64), and on a DLMC FFN pair where ../shared has it."""

from __future__ import annotations

import numpy as np
import pytest

from spmm_study.errors import ParamError
from spmm_study.formats import CSR
from spmm_study.nets import generate
from spmm_study.nets.propagate import Layer, check, propagate, report


def csr(rows):
    return CSR.from_dense(np.array(rows, dtype=np.float32))


def test_forward_and_backward_rules_with_a_cascade():
    # layer 1: 4 out x 3 in. Row 2 is empty (bias -1 -> relu 0: dead). Row 1 is read by nobody (column 1 of
    # layer 2 is zero) -> removed backward; then input feature 0, read only by row 1, is dropped too.
    a1 = csr([[0, 1, 0], [2, 0, 0], [0, 0, 0], [0, 3, 1]])
    a2 = csr([[1, 0, 5, 1], [0, 0, 2, 1]])
    full = [Layer(a1, np.array([0.5, 0.1, -1.0, 0.2], np.float32), "relu", "row"),
            Layer(a2, np.array([0.0, 0.3], np.float32), "none", "row")]
    s = propagate(full)
    assert s.keep[0].tolist() == [1, 2]  # input feature 0 dropped
    assert s.keep[1].tolist() == [0, 3]  # hidden 1 (unread) and 2 (constant 0) removed
    assert s.keep[2].tolist() == [0, 1]  # outputs always stay
    assert s.removed == {"rows": 2, "cols": 3, "nnz": 1 + 2}  # a1[1,0]; a2[0,2], a2[1,2]
    assert s.rounds >= 2 and s.folded == 0
    x = np.abs(np.random.default_rng(0).standard_normal((3, 9)))
    assert check(full, s, x)["identical"]


def test_positive_constant_is_folded_into_the_next_bias():
    a1 = csr([[1, 2], [0, 0], [0, 1]])
    a2 = csr([[1, 4, 1], [2, 3, 0]])
    full = [Layer(a1, np.array([0.0, 0.75, 0.0], np.float32), "relu", "row"),
            Layer(a2, np.array([0.5, -0.5], np.float32), "relu", "row")]
    s = propagate(full)
    assert s.folded == 1 and s.keep[1].tolist() == [0, 2]
    assert s.layers[1].bias.tolist() == [0.5 + 4 * 0.75, -0.5 + 3 * 0.75]
    res = check(full, s, np.abs(np.random.default_rng(1).standard_normal((2, 5))))
    assert res["max_rel_diff"] < 1e-15
    # without folding the constant neuron must stay
    assert propagate(full, fold=False).keep[1].tolist() == [0, 1, 2]


def test_nonzero_rule_makes_an_empty_row_dead_even_with_a_positive_bias():
    a1 = csr([[1, 0], [0, 0]])
    a2 = csr([[1, 1]])
    full = [Layer(a1, np.array([0.5, 0.5], np.float32), "clamp", "nonzero"),
            Layer(a2, np.array([0.0], np.float32), "clamp", "nonzero")]
    s = propagate(full)
    assert s.keep[1].tolist() == [0] and s.folded == 0
    assert check(full, s, np.ones((2, 3)))["identical"]


@pytest.mark.parametrize("seed", range(6))
def test_random_chains_give_identical_outputs(seed):
    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(5, 30, size=4)]
    layers = []
    for l in range(3):
        d = np.where(rng.random((widths[l + 1], widths[l])) < 0.12, rng.standard_normal((widths[l + 1], widths[l])), 0)
        layers.append(Layer(CSR.from_dense(d.astype(np.float32)), -np.abs(rng.standard_normal(widths[l + 1])).astype(np.float32),
                            "relu", "row"))
    s = propagate(layers)
    res = check(layers, s, np.abs(rng.standard_normal((widths[0], 7))))
    assert res["identical"], res
    for l, lay in enumerate(s.layers):  # fixed point: no empty row (but the outputs), no unread column
        if l < len(s.layers) - 1:
            assert (np.diff(lay.a.indptr) > 0).all()
        assert np.isin(np.arange(lay.a.k), lay.a.indices).all()


def test_radix_networks_have_no_static_dead_structure():
    net = generate.network(64, 4, seed=0)
    layers = [Layer(a, b, "clamp", "nonzero") for a, b in zip(net.layers, net.biases)]
    s = propagate(layers)
    assert s.removed == {"rows": 0, "cols": 0, "nnz": 0}


def test_report_counts_and_times():
    a1 = csr([[0, 1, 0], [2, 0, 0], [0, 0, 0], [0, 3, 1]])
    a2 = csr([[1, 0, 5, 1], [0, 0, 2, 1]])
    full = [Layer(a1, np.array([0.5, 0.1, -1.0, 0.2], np.float32), "relu", "row"),
            Layer(a2, np.array([0.0, 0.3], np.float32), "none", "row")]
    r = report(full, propagate(full), 16, repeats=2)
    assert r["nnz"] == 3 and r["flops_removed"] == 2 * 3 * 16 and r["bytes_removed"] > 0
    assert r["identical"] and r["float32_same"] and r["time_full_s"] > 0


def test_chain_that_does_not_chain_is_refused():
    with pytest.raises(ParamError, match="takes"):
        propagate([Layer(csr([[1, 0]]), np.zeros(1, np.float32)), Layer(csr([[1, 0]]), np.zeros(1, np.float32))])


def test_dlmc_ffn_pair(dlmc):
    from spmm_study import sources

    base = "dlmc:transformer/magnitude_pruning/0.98/body_encoder_layer_0_ffn_conv"
    a1 = sources.load(base + "1_fully_connected", dlmc_root=str(dlmc)).a
    a2 = sources.load(base + "2_fully_connected", dlmc_root=str(dlmc)).a
    full = [Layer(a1, np.zeros(a1.m, np.float32), "relu", "row"), Layer(a2, np.zeros(a2.m, np.float32), "none", "row")]
    s = propagate(full)
    assert s.removed["rows"] > 0 and s.removed["nnz"] > 0  # 98% magnitude pruning leaves dead hidden units
    assert check(full, s, np.abs(np.random.default_rng(0).standard_normal((512, 4))))["identical"]


def test_propagate_command(capsys):
    from test_cli import cli

    code, out, err = cli(capsys, "propagate", "--net", "generated:64x3", "--n", "8", "--repeats", "1")
    assert code == 0, err
    assert "same" in out and "fixed point" in out
    code, out, err = cli(capsys, "propagate", "-m", "synthetic:uniform:48x32:0.97", "-m", "synthetic:uniform:16x48:0.97",
                         "--n", "8", "--repeats", "1", "--bias", "-0.5")
    assert code == 0, err
    assert "same" in out


@pytest.mark.parametrize("argv, match", [
    ([], "either --matrix"),
    (["--net", "generated:64x3", "-m", "synthetic:uniform:8x8:0.5"], "either --matrix"),
    (["--net", "generated:64x3", "--n", "0"], "at least 1"),
    (["--net", "generated:64x3", "--last-act", "tanh"], "last-act"),
    (["-m", "synthetic:uniform:8x6:0.5", "-m", "synthetic:uniform:8x6:0.5"], "takes 6 inputs"),
    (["--net", "nonsense"], "expected spdnn"),
])
def test_propagate_bad_input(capsys, argv, match):
    from test_cli import fails

    fails(capsys, "propagate", *argv, match=match)
