"""The MLP workloads written by hand in numpy: the floor nncli's compiled step is measured against.

Same maths as nncli's Dense + SparseCategoricalCrossentropy(from_logits=True) + Adam
(Keras's update rule), float32 throughout, every array preallocated and updated in
place, no framework at all: one matmul per product, one ufunc per elementwise step.

    step = mlp_step([784, 256, 256, 10], "relu", batch=128)
    loss = step(x, labels)
"""

from __future__ import annotations

import math

import numpy as np


def glorot(rng, fan_in: int, fan_out: int) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


class Adam:
    """Keras's Adam on preallocated moments: m, v and one work buffer per parameter."""

    def __init__(self, params, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, beta_1, beta_2, epsilon
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.work = [np.empty_like(p) for p in params]
        self.t = 0

    def update(self, grads) -> None:
        self.t += 1
        b1, b2 = self.b1, self.b2
        alpha = self.lr * math.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
        for p, g, m, v, w in zip(self.params, grads, self.m, self.v, self.work):
            np.subtract(g, m, out=w)
            w *= 1.0 - b1
            m += w                       # m += (g - m)(1 - b1)
            np.square(g, out=w)
            w -= v
            w *= 1.0 - b2
            v += w                       # v += (g^2 - v)(1 - b2)
            np.sqrt(v, out=w)
            w += self.eps
            np.divide(m, w, out=w)
            w *= alpha
            p -= w                       # p -= alpha m / (sqrt(v) + eps)


def mlp_step(sizes, activation: str, batch: int, seed: int = 0):
    """A train step ``step(x, labels) -> loss`` of an MLP with ``sizes`` (inputs first)."""
    rng = np.random.default_rng(seed)
    kernels = [glorot(rng, a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [np.zeros(b, np.float32) for b in sizes[1:]]
    opt = Adam(kernels + biases)
    acts = [np.empty((batch, n), np.float32) for n in sizes[1:]]     # layer outputs
    deltas = [np.empty((batch, n), np.float32) for n in sizes[1:]]   # dL/d(pre-activation)
    masks = [np.empty((batch, n), np.float32) for n in sizes[1:-1]]
    gk = [np.empty_like(k) for k in kernels]
    gb = [np.empty_like(b) for b in biases]
    grads = gk + gb
    rows = np.arange(batch)
    last = len(kernels) - 1
    sigmoid = activation == "sigmoid"

    def step(x, labels) -> float:
        a = x
        for i, (k, b) in enumerate(zip(kernels, biases)):
            z = acts[i]
            np.matmul(a, k, out=z)
            z += b
            if i < last:
                if sigmoid:              # 0.5 + 0.5 tanh(z / 2)
                    z *= 0.5
                    np.tanh(z, out=z)
                    z *= 0.5
                    z += 0.5
                else:
                    np.maximum(z, 0.0, out=z)
            a = z
        d = deltas[last]                 # softmax cross-entropy, its gradient in place
        np.subtract(a, a.max(axis=1, keepdims=True), out=d)
        picked = d[rows, labels]
        np.exp(d, out=d)
        total = d.sum(axis=1)
        loss = float(np.mean(np.log(total) - picked))
        d /= total[:, None]
        d[rows, labels] -= 1.0
        d *= 1.0 / batch
        for i in range(last, -1, -1):
            d = deltas[i]
            np.matmul((x if i == 0 else acts[i - 1]).T, d, out=gk[i])
            np.add.reduce(d, axis=0, out=gb[i])
            if i:
                prev, mask = deltas[i - 1], masks[i - 1]
                np.matmul(d, kernels[i].T, out=prev)
                y = acts[i - 1]
                if sigmoid:              # y (1 - y)
                    np.subtract(1.0, y, out=mask)
                    mask *= y
                else:
                    np.greater(y, 0.0, out=mask)
                prev *= mask
        opt.update(grads)
        return loss

    return step
