"""On a real GPU (skipped elsewhere): the cuda backend equals the CPU build within FMA tolerance."""
import numpy as np
import pytest

from gpubt.backend import Backend

from .test_cycles import random_batch

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("seed", [0, 1])
def test_cuda_equals_cpu(seed):
    cuda_backend = Backend("cuda")
    args, outs_cpu = random_batch(seed, n_pairs=5000)
    Backend("cpu").launch("cycles", "screen_pairs", 5000, (*args, *outs_cpu))
    dev_args = [cuda_backend.to_device(a) for a in args]
    dev_outs = [cuda_backend.to_device(np.zeros(5000)) for _ in range(3)]
    cuda_backend.launch("cycles", "screen_pairs", 5000, (*dev_args, *dev_outs))
    for a, b in zip(outs_cpu, dev_outs):
        # a·b+c fuses into one FMA on the GPU: last-bit differences, hence a relative tolerance
        np.testing.assert_allclose(cuda_backend.to_host(b), a, rtol=1e-12, atol=1e-6)
