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


def optimal_profit(k, m, n):
    """(optimal input, gross profit) of the composed virtual pool; (0, 0) when the cycle is not profitable.

    At x* = √m·(√k − √m)/n the profit out(x*) − x* is (√k − √m)²/n: one division instead of two, and no
    cancellation between out and x (they agree to ~1e-3 relative on a typical cycle). √k and √m apart, not
    √(k·m): k·m overflows float64 past ~6 hops of 1e24-wei reserves. Both results are computed, then selected
    rather than branched on: whether a cycle pays is a coin flip across pairs, and a mispredicted branch costs
    more than the square roots."""
    d = math.sqrt(k) - math.sqrt(m)
    inv_n = 1.0 / n
    ok = (k > m) & (n > 0.0)
    x = math.sqrt(m) * d * inv_n
    gross = d * d * inv_n
    return (x if ok else 0.0), (gross if ok else 0.0)


def optimal_input(k, m, n):
    """argmax_x k·x/(m + n·x) − x, i.e. (sqrt(k·m) − m)/n; zero when the cycle is not profitable (k <= m)."""
    return optimal_profit(k, m, n)[0]
