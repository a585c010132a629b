"""MEV strategies, one module
per strategy, each with its kernel in kernels/<name>.py. See base.py for the interface the controller calls."""
