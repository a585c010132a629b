"""Cyclic arbitrage as a strategy: paths.py (the cycles and their evaluation pairs), pricing.py (selection and
exact re-pricing), strategy.py (the screen-select-price loop behind the Strategy interface)."""
from gpubt.strategies.arbitrage.strategy import Arbitrage

__all__ = ["Arbitrage"]
