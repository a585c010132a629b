"""Backend resolution: explicit requests raise with the reason, only `auto` falls back."""
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
