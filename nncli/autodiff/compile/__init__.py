"""Compiling traced Functions: ``trace`` records instructions while the Python runs once,
``program`` plans buffers and replays them, ``kernels`` builds each step's closure."""
