"""Device code: scalar functions in the numba subset, compiled for numba-CPU and numba-CUDA by kernels/compile.py.

Importable as `gpubt.kernels`. Nothing here imports gpubt, numpy allocations, or reads configuration.
"""
