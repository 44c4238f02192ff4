"""Sparse networks end to end (issue 16): layer chains Y_{l+1} = act(Y_l · W_l + b) on top of the SpMM ladders.

* ``layer`` — the epilogue (bias rule, activation) and ``LayerProblem``, the problem a fused variant solves;
* ``spdnn`` — the Sparse DNN Graph Challenge's TSV files (weights, inputs, categories) and network layout;
* ``generate`` — structurally equivalent (RadiX-Net-like) networks with float64 truth;
* ``chain`` — running a network layer by layer (fused kernels or baseline chains), with dead-input pruning;
* ``propagate`` — SparTA's sparsity propagation across a chain of sparse layers;
* ``ffn`` — the sparse transformer FFN block on DLMC weights;
* ``partition`` — inputs split into contiguous nnz-balanced parts, run across processes (issue 15, CPU side).
"""
