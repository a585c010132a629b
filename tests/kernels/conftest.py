"""Kernel tests: compiling device functions and kernels to sm_90 PTX without a GPU."""
import pytest


@pytest.fixture
def ptx_without_gpu(monkeypatch):
    """A checker `(functions, signatures, cuda_fns, kernel, kernel_signature)`: every plain-Python device function
    in `functions` compiles to an sm_90 `.func` with signatures[its name] (calls bound to the compiled `cuda_fns`),
    and `kernel` to an `.entry`. `signatures` may instead be a CPU build (not inlined) that has run: each
    function's first compiled signature is used (the argument types are the same on both targets).
    compile_ptx of a kernel that calls device functions asks the current device for its compute capability; with
    no GPU the fixture answers for it (sm_90, the H100/H200 target)."""
    from numba import cuda
    import numba.cuda.dispatcher as dispatcher

    from gpubt.kernels.compile import rebind

    class _Device:
        compute_capability = (9, 0)

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: _Device())

    def check(functions, signatures, cuda_fns, kernel, kernel_signature):
        deps = {name: getattr(cuda_fns, name) for name in vars(cuda_fns)}
        if not isinstance(signatures, dict):
            signatures = {fn.__name__: next(iter(getattr(signatures, fn.__name__).signatures), None)
                          for fn in functions}
        for fn in functions:
            assert signatures.get(fn.__name__), f"no signature for {fn.__name__}"
            ptx, _ = cuda.compile_ptx(rebind(fn, deps), signatures[fn.__name__], device=True, cc=(9, 0))
            assert ".target sm_90" in ptx and ".func" in ptx, fn.__name__
        ptx, _ = cuda.compile_ptx(rebind(kernel, {**deps, "cuda": cuda}), kernel_signature, cc=(9, 0))
        assert ".entry" in ptx and ".target sm_90" in ptx

    return check
