"""nncli: train neural networks from YAML configs on a numpy tape-based autodiff engine."""

__version__ = "0.1.0"
