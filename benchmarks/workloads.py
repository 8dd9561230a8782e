"""The benchmark workloads: the same model and train step in nncli, hand-written numpy and PyTorch.

Every workload trains with Adam (learning rate 0.001) on softmax cross-entropy from
logits, float32, on one fixed batch of random data. A step is forward, loss,
backward and the optimizer update; ``nncli_step``, ``numpy_step`` and ``torch_step``
return ``step() -> loss`` (``numpy_step`` None where there is no hand-written version).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import handwritten


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    batch: int
    input_shape: tuple  # one sample, channels last
    classes: int
    mlp: tuple | None = None  # (sizes, activation) when hand-written numpy exists


WORKLOADS = {w.name: w for w in [
    Workload("W1", "Rindow model 2-128(sigmoid)-2, batch 6", 6, (2,), 2, ([2, 128, 2], "sigmoid")),
    Workload("W2", "MLP 784-256-256-10 relu, batch 128", 128, (784,), 10, ([784, 256, 256, 10], "relu")),
    Workload("W3", "MLP 784-1024-1024-10 relu, batch 256", 256, (784,), 10, ([784, 1024, 1024, 10], "relu")),
    Workload("W4", "CNN conv32-pool-conv64-pool-dense10, 28x28x1, batch 64", 64, (28, 28, 1), 10),
    Workload("W5", "LSTM 64 over 32 steps x 32 features, dense 10, batch 32", 32, (32, 32), 10),
]}


def data(w: Workload, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((w.batch, *w.input_shape)).astype(np.float32)
    return x, rng.integers(0, w.classes, w.batch)


# -- nncli ----------------------------------------------------------------------------
def nncli_model(w: Workload):
    from nncli import nn

    L = nn.layers
    if w.mlp is not None:
        sizes, act = w.mlp
        layers = [L.Dense(n, activation=act) for n in sizes[1:-1]] + [L.Dense(sizes[-1])]
    elif w.name == "W4":
        layers = [L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"),
                  L.MaxPooling2D(2), L.Flatten(), L.Dense(w.classes)]
    else:
        layers = [L.LSTM(64), L.Dense(w.classes)]
    return nn.Sequential(layers, input_shape=list(w.input_shape))


def nncli_train_step(model, loss, optimizer):
    """The Rindow chapter's train step: tape, gradient, optimizer update."""
    import nncli.autodiff as ad

    def train_step(inputs, trues):
        params = model.trainable_variables
        with ad.GradientTape() as tape:
            value = loss(trues, model(inputs, training=True))
        optimizer.update(params, tape.gradient(value, params))
        return value

    return train_step


def nncli_step(w: Workload, compiled: bool):
    import nncli.autodiff as ad
    from nncli import nn

    nn.random.seed(0)
    step = nncli_train_step(nncli_model(w), nn.losses.SparseCategoricalCrossentropy(from_logits=True),
                            nn.optimizers.Adam(learning_rate=0.001))
    if compiled:
        step = ad.function(step)
    x, y = data(w)
    return lambda: float(step(x, y))


# -- hand-written numpy -------------------------------------------------------------
def numpy_step(w: Workload):
    if w.mlp is None:
        return None
    step = handwritten.mlp_step(*w.mlp, batch=w.batch)
    x, y = data(w)
    return lambda: step(x, y)


# -- PyTorch --------------------------------------------------------------------------
def torch_model(w: Workload, torch):
    nn = torch.nn
    if w.mlp is not None:
        sizes, act = w.mlp
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.Sigmoid() if act == "sigmoid" else nn.ReLU())
        return nn.Sequential(*layers)
    if w.name == "W4":  # channels first, torch's native layout
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, w.classes))

    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.dense = nn.LSTM(w.input_shape[1], 64, batch_first=True), nn.Linear(64, w.classes)

        def forward(self, x):
            return self.dense(self.lstm(x)[0][:, -1])

    return LastStep()


def torch_step(w: Workload, torch):
    torch.manual_seed(0)
    model = torch_model(w, torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = data(w)
    if w.name == "W4":
        x = x.transpose(0, 3, 1, 2).copy()
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


# -- JAX ------------------------------------------------------------------------------
def _jax_params(w: Workload, seed: int = 0) -> dict:
    """Glorot-uniform kernels and zero biases (numpy's generator, so runs are repeatable)."""
    rng = np.random.default_rng(seed)
    if w.mlp is not None:
        sizes = w.mlp[0]
        return {"dense": [(handwritten.glorot(rng, a, b), np.zeros(b, np.float32)) for a, b in zip(sizes[:-1], sizes[1:])]}
    if w.name == "W4":  # kernels HWIO, channels last as nncli's
        conv = [(rng.uniform(-1, 1, (3, 3, cin, cout)).astype(np.float32) * np.float32(np.sqrt(6 / (9 * (cin + cout)))),
                 np.zeros(cout, np.float32)) for cin, cout in ((1, 32), (32, 64))]
        return {"conv": conv, "dense": [(handwritten.glorot(rng, 5 * 5 * 64, w.classes), np.zeros(w.classes, np.float32))]}
    features, units = w.input_shape[1], 64
    return {"lstm": (handwritten.glorot(rng, features, 4 * units), handwritten.glorot(rng, units, 4 * units),
                     np.zeros(4 * units, np.float32)),
            "dense": [(handwritten.glorot(rng, units, w.classes), np.zeros(w.classes, np.float32))]}


def _jax_forward(w: Workload, jax):
    """``forward(params, x) -> logits`` written as a JAX user would (``lax.scan`` for the LSTM)."""
    jnp, lax = jax.numpy, jax.lax

    def dense(layers, a, act):
        for i, (k, b) in enumerate(layers):
            a = a @ k + b
            if i < len(layers) - 1:
                a = act(a)
        return a

    if w.mlp is not None:
        act = jax.nn.sigmoid if w.mlp[1] == "sigmoid" else jax.nn.relu
        return lambda params, x: dense(params["dense"], x, act)
    if w.name == "W4":
        def cnn(params, x):
            for k, b in params["conv"]:
                x = jax.nn.relu(lax.conv_general_dilated(x, k, (1, 1), "VALID",
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC")) + b)
                x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
            return dense(params["dense"], x.reshape(x.shape[0], -1), None)
        return cnn

    def lstm(params, x):  # Keras's gate order i, f, c, o; the input projection for all steps at once
        kx, kh, b = params["lstm"]
        xw = jnp.swapaxes(x @ kx + b, 0, 1)
        units = kh.shape[0]

        def cell(carry, xw_t):
            h, c = carry
            i, f, g, o = jnp.split(xw_t + h @ kh, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), None

        zeros = jnp.zeros((x.shape[0], units), x.dtype)
        (h, _), _ = lax.scan(cell, (zeros, zeros), xw)
        return dense(params["dense"], h, None)
    return lstm


def jax_step(w: Workload, jax, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """The whole step under one ``jax.jit``: forward, loss, grad and Keras's Adam update,
    with the parameters and slots donated so XLA updates them in place."""
    jnp = jax.numpy
    tree = jax.tree_util
    forward = _jax_forward(w, jax)

    def loss_fn(params, x, y):
        logits = forward(params, x)
        picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)

    def train(params, m, v, t, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1.0
        alpha = lr * jnp.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)
        m = tree.tree_map(lambda m, g: m + (g - m) * (1.0 - beta_1), m, grads)
        v = tree.tree_map(lambda v, g: v + (g * g - v) * (1.0 - beta_2), v, grads)
        params = tree.tree_map(lambda p, m, v: p - alpha * m / (jnp.sqrt(v) + epsilon), params, m, v)
        return params, m, v, t, loss

    step_fn = jax.jit(train, donate_argnums=(0, 1, 2, 3))
    params = tree.tree_map(jnp.asarray, _jax_params(w))
    x, y = data(w)
    state = [params, tree.tree_map(jnp.zeros_like, params), tree.tree_map(jnp.zeros_like, params),
             jnp.zeros((), jnp.float32)]
    x, y = jnp.asarray(x), jnp.asarray(y.astype(np.int32))

    def step():
        out = step_fn(*state, x, y)
        state[:] = out[:4]
        return float(out[4])

    return step
