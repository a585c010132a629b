"""Uniswap V2 constant-product math, float64 screening versions (exact versions: gpubt/exact/v2.py)."""
import math


def v2_amount_out(amount_in, reserve_in, reserve_out, gamma):
    """Output of one V2 swap; gamma is the kept fraction of the input (0.997 for a 0.30 % fee)."""
    x = amount_in * gamma
    return x * reserve_out / (reserve_in + x)


def compose_hop(k, m, n, reserve_in, reserve_out, gamma):
    """Fold one more hop into out(x) = k·x / (m + n·x); returns the new (k, m, n)."""
    return gamma * reserve_out * k, reserve_in * m, reserve_in * n + gamma * k


def cycle_out(x, k, m, n):
    """Output of the composed virtual pool for input x."""
    return k * x / (m + n * x)


def optimal_input(k, m, n):
    """argmax_x k·x/(m + n·x) − x, i.e. (sqrt(k·m) − m)/n; zero when the cycle is not profitable (k <= m)."""
    if k <= m or n <= 0.0:
        return 0.0
    # sqrt(k)·sqrt(m) rather than sqrt(k·m): k·m overflows float64 past ~6 hops of 1e24-wei reserves
    return (math.sqrt(k) * math.sqrt(m) - m) / n
