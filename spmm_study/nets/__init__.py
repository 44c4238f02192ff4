"""Sparse networks end to end (issue 16): layer chains Y_{l+1} = act(Y_l · W_l + b) on top of the SpMM ladders.

* ``batch`` — what the CPU and GPU chains share: the dense transposed inputs and the per-layer row (the
  epilogue itself, bias rule and activation, is ``spmm_study.epilogue``);
* ``spdnn`` — the Sparse DNN Graph Challenge's TSV files (weights, inputs, categories) and network layout;
* ``generate`` — structurally equivalent (RadiX-Net-like) networks with float64 truth;
* ``chain`` — running a network layer by layer (fused kernels or baseline chains), with dead-input pruning;
* ``propagate`` — SparTA's sparsity propagation across a chain of sparse layers;
* ``ffn`` — the sparse transformer FFN block on DLMC weights;
* ``chain_gpu`` — the same chain on the GPU (fused GPU rungs; cupy and torch chains as baselines);
* ``infer`` — what the ``infer`` command runs: the network set up, the engines side by side, the output files;
* ``partition`` — inputs split into contiguous nnz-balanced parts, run across processes (issue 15, CPU side).
"""
