"""MEV strategies besides cyclic arbitrage (which lives in pack/paths/kernels.cycles/engine.verify): one module
per strategy, each with its kernel in kernels/<name>.py. See base.py for the interface the controller calls."""
