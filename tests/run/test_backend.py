"""Backend resolution (explicit requests raise with the reason, only `auto` falls back) and its kernel builds."""
import numpy as np
import pytest

from gpubt.backend import BackendUnavailable, cuda_unavailable_reason, resolve_backend


def test_cpu_and_cudasim_resolve_everywhere():
    assert resolve_backend("cpu").xp is np
    sim = resolve_backend("cudasim")
    assert sim.name == "cudasim" and sim.xp is np and "simulator" in sim.reason


def test_unknown_backend_names_the_choices():
    with pytest.raises(BackendUnavailable, match="auto, cpu, cuda, cudasim"):
        resolve_backend("tpu")


@pytest.mark.skipif(cuda_unavailable_reason() is None, reason="a GPU is usable here")
def test_without_gpu_cuda_raises_and_auto_falls_back():
    with pytest.raises(BackendUnavailable, match="backend=cuda is not usable here"):
        resolve_backend("cuda")
    auto = resolve_backend("auto")
    assert auto.name == "cpu" and auto.reason.startswith("auto: cuda unavailable")


@pytest.mark.gpu
def test_with_gpu_auto_picks_cuda():
    assert resolve_backend("auto").name == "cuda"


def test_one_build_per_module_and_backend():
    """Backend.compiled builds kernels/<module>.py once per (module, backend name), whichever Backend asks."""
    from gpubt.backend import Backend

    assert Backend("cudasim").compiled("cycles") is resolve_backend("cudasim").compiled("cycles")
    assert Backend("cudasim").compiled("cycles") is not Backend("cudasim").compiled("cexdex")


def test_launch_names_the_registry_for_an_unregistered_module():
    from gpubt.backend import Backend

    with pytest.raises(ValueError, match="gpubt.kernels.REGISTRY"):
        Backend("cpu").launch("amm_v2", "v2_amount_out", 1, ())
    Backend("cpu").launch("amm_v2", "v2_amount_out", 0, ())  # nothing to run: nothing built
