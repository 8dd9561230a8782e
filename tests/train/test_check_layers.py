"""``nncli check``'s per-layer gradient check is autodiff's check_gradients: a wrong rule is caught."""

import numpy as np

import nncli.autodiff as ad
from nncli.nn.layers import Dense
from nncli.train.check import _check_layer


class HalfStoppedDense(Dense):
    """A Dense whose kernel gradient is half what it should be (half the product is stopped)."""

    def call(self, inputs, training=False):
        y = ad.matmul(inputs, self.kernel) * 0.5 + ad.matmul(inputs, ad.stop_gradient(self.kernel)) * 0.5
        return y + self.bias


def test_a_layer_with_a_wrong_weight_gradient_fails_and_a_right_one_passes():
    rng = np.random.default_rng(0)
    good = _check_layer(Dense(3, activation="tanh"), (4,), rng)
    assert good.ok and good.checked == ["inputs", "kernel", "bias"] and good.max_error < 1e-6
    bad = _check_layer(HalfStoppedDense(3), (4,), rng)
    assert not bad.ok and bad.max_error > 1e-2
