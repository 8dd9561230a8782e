"""W6: a chain of small ops, forward and backward; what a framework costs per op.

The chain cycles through mul, add, tanh and sigmoid on a 16-element float32 vector
(as benchmarks/bench_ops.py), so the time is overhead, not arithmetic. Each factory
returns ``step()`` running the whole chain and its gradient once.
"""

from __future__ import annotations

import numpy as np

SIZE = 16


def _chain(x, c, n_ops, tanh, sigmoid):
    """The chain itself, for any framework: ``*`` and ``+`` are operators, the rest passed in."""
    y = x
    for i in range(n_ops - 1):
        k = i % 4
        if k == 0:
            y = y * c
        elif k == 1:
            y = y + c
        elif k == 2:
            y = tanh(y)
        else:
            y = sigmoid(y)
    return y


def nncli_step(n_ops: int, compiled: bool):
    import nncli.autodiff as ad

    c = ad.Tensor(np.full(SIZE, 0.999, dtype=np.float32))
    x0 = np.linspace(-1, 1, SIZE, dtype=np.float32)

    def grad(x):
        with ad.GradientTape() as tape:
            tape.watch(x)
            total = ad.sum(_chain(x, c, n_ops, ad.tanh, ad.sigmoid))
        return tape.gradient(total, x)

    if compiled:
        f = ad.function(grad)
        return lambda: f(x0)
    x = ad.Tensor(x0)
    return lambda: grad(x)


def torch_step(n_ops: int, torch):
    x = torch.linspace(-1, 1, SIZE, dtype=torch.float32, requires_grad=True)
    c = torch.full((SIZE,), 0.999, dtype=torch.float32)

    def step():
        _chain(x, c, n_ops, torch.tanh, torch.sigmoid).sum().backward()
        x.grad = None

    return step
