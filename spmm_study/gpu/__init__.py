"""The GPU ladder (numba-cuda): one file per kernel idea, plus cuBLAS/cuSPARSE baselines through cupy.

Kernel files must import ``numba.cuda`` lazily (inside a cached factory), so that registering and listing
GPU variants works, fast, on machines without numba-cuda or a GPU.
"""
