"""Device code: scalar functions in the numba subset, compiled for numba-CPU and numba-CUDA by kernels/compile.py.

Importable as `gpubt.kernels`. Nothing here imports gpubt, numpy allocations, or reads configuration.

A kernel module — one with drivers — is listed in REGISTRY and ends with its declaration:
  DEVICE_FUNCTIONS  its device functions and every helper they call (other modules' too), in dependency order
  DRIVERS           (<name>_cpu, <name>_cuda) pairs: a prange loop over n items and one CUDA thread per item,
                    each calling the module's item function i -> outputs[i]
  INLINE = False    optional: compile every CPU device function on its own (kernels/u256.py says why)
The backend launches a driver by name (gpubt.backend.Backend.launch(module, "<name>", n, args)); the tests compile
every registered function and driver to sm_90 PTX and compare every driver's CPU and simulator runs.
"""
REGISTRY = ("cycles", "sandwich", "jit", "liquidation", "cexdex", "auction", "exact_uniswap", "exact_search",
            "exact_sandwich")
