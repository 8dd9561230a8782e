"""The gradient checker itself: right answers pass, deliberately wrong gradients are caught."""

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli.autodiff.gradcheck import check_gradients, check_second_order, numeric_gradient

rng = np.random.default_rng(42)
X = rng.standard_normal((3, 2))
W = rng.standard_normal((2, 4))
U = rng.standard_normal((3, 4))


def test_numeric_gradient_matches_analytic_with_an_upstream_gradient():
    (gx, gw) = numeric_gradient(lambda x, w: x @ w, [X, W], U)
    np.testing.assert_allclose(gx, U @ W.T, atol=1e-8)
    np.testing.assert_allclose(gw, X.T @ U, atol=1e-8)
    (g,) = numeric_gradient(lambda x: x**3, [np.array(2.0)], np.array(1.0))
    assert g.shape == () and abs(g - 12.0) < 1e-6


def test_numeric_gradient_evaluates_f_twice_per_element_and_leaves_inputs_alone():
    calls = []
    x = X.copy()

    def f(a, w):
        calls.append(1)
        return a @ w

    (gx,) = numeric_gradient(f, [x, W], U, wrt=[0])
    assert len(calls) == 2 * x.size
    np.testing.assert_array_equal(x, X)
    np.testing.assert_allclose(gx, U @ W.T, atol=1e-8)


def test_numeric_gradient_rejects_an_upstream_of_the_wrong_shape():
    with pytest.raises(ValueError, match="upstream gradient has shape"):
        numeric_gradient(lambda x: x * 2, [X], np.ones(4))


@pytest.mark.parametrize("f, inputs", [
    (ad.mul, [X, X[:1]]),                                     # broadcasting (3,2) * (1,2)
    (ad.add, [X, np.array(0.5)]),
    (ad.div, [X, np.abs(X) + 1]),
    (ad.matmul, [X, W]),
    (lambda x: ad.sum(x * x, axis=0), [X]),
    (lambda x: ad.softmax(x, axis=-1), [X]),
    (lambda x: ad.tanh(x) @ ad.transpose(x), [X]),
    (lambda x: x, [X]),                                        # the output is the input itself
    (lambda x, w: x * 2, [X, W]),                              # w is unconnected: its gradient is 0
])
def test_correct_gradients_pass(f, inputs):
    result = check_gradients(f, inputs)
    assert result.ok, str(result)
    assert result.max_error < 1e-7
    assert [c.tape.shape for c in result.inputs] == [np.shape(x) for x in inputs]


def test_a_wrong_gradient_is_caught():
    half = check_gradients(lambda x: x * ad.stop_gradient(x), [X])  # value x**2, tape says x instead of 2x
    assert not half.ok and half.max_error > 0.1
    np.testing.assert_allclose(half.inputs[0].numeric, 2 * X * half.upstream, atol=1e-6)
    doubled = check_gradients(lambda x: 2 * x - ad.stop_gradient(x), [X])  # value x, tape says 2
    assert not doubled.ok


def mixes_elements(x):
    """Value x; the tape's gradient averages the upstream over elements instead of passing it through."""
    total = ad.sum(x)
    return ad.stop_gradient(x) + (total - ad.stop_gradient(total)) / x.size


def test_a_random_upstream_catches_what_a_plain_sum_misses():
    assert check_gradients(mixes_elements, [X], upstream="ones").ok
    assert not check_gradients(mixes_elements, [X]).ok


def test_non_float_inputs_pass_through_and_only_wrt_is_differentiated():
    result = check_gradients(lambda x, axis: ad.sum(x, axis=axis), [X, 1])
    assert result.ok and len(result.inputs) == 1
    only_w = check_gradients(ad.matmul, [X, W], wrt=[1], names=["w"])
    assert [c.name for c in only_w.inputs] == ["w"] and only_w.ok
    with pytest.raises(ValueError, match="not a floating input"):
        check_gradients(lambda x, axis: ad.sum(x, axis=axis), [X, 1], wrt=[1])


def test_float32_tape_against_float64_differences():
    result = check_gradients(ad.matmul, [X, W], dtype=np.float32, atol=1e-4, rtol=1e-3)
    assert result.ok and result.inputs[0].tape.dtype == np.float32 and result.value.dtype == np.float32


def test_max_checks_samples_elements():
    x = rng.standard_normal((20, 10))
    result = check_gradients(lambda a: a * a, [x], max_checks=15)
    c = result.inputs[0]
    assert result.ok and c.checked == 15 and np.isnan(c.numeric).sum() == x.size - 15
    wrong = check_gradients(lambda a: a * ad.stop_gradient(a), [x], max_checks=15)
    assert not wrong.ok


def test_nan_gradients_fail():
    with np.errstate(invalid="ignore"):
        assert not check_gradients(ad.log, [np.array([-1.0, 2.0])]).ok


def wrong_second_derivative(x):
    """Value x**3 / 3 and a right first derivative x**2, but one the tape cannot differentiate again."""
    return x * ad.stop_gradient(x * x) - (2 / 3) * ad.stop_gradient(x * x * x)


@pytest.mark.parametrize("f, inputs", [
    (lambda x: ad.sum(ad.exp(x) * x), [X]),
    (ad.tanh, [X]),
    (ad.sigmoid, [X]),
    (ad.matmul, [X, W]),
    (lambda x: ad.softmax(x), [X]),
    (lambda x, w: ad.sum(ad.square(x @ w), axis=1), [X, W]),
])
def test_second_order_passes_correct_functions(f, inputs):
    result = check_second_order(f, inputs)
    assert result.ok, str(result)


def test_second_order_catches_a_wrong_second_derivative():
    assert check_gradients(wrong_second_derivative, [X]).ok
    result = check_second_order(wrong_second_derivative, [X])
    assert not result.ok and result.max_error > 0.1


def test_variables_read_by_f_are_checked_and_put_back():
    w = ad.Variable(rng.standard_normal((2, 4)), dtype=np.float64)
    before = w.numpy().copy()
    result = check_gradients(lambda x: ad.matmul(x, w), [X], variables={"w": w})
    assert [c.name for c in result.inputs] == ["x0", "w"] and result.ok
    np.testing.assert_allclose(result.inputs[1].tape, X.T @ result.upstream, atol=1e-12)
    np.testing.assert_array_equal(w.numpy(), before)  # moved by the differences, then restored
    # a weight whose tape gradient is wrong (half of it stopped) is caught, and still put back
    wrong = check_gradients(lambda x: ad.matmul(x, w) * 0.5 + ad.matmul(x, ad.stop_gradient(w)) * 0.5, [X],
                            variables={"w": w}, wrt=[])
    assert not wrong.ok and [c.name for c in wrong.inputs] == ["w"]
    np.testing.assert_array_equal(w.numpy(), before)

    calls = []

    def fails_late(x):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("boom")
        return ad.matmul(x, w)

    with pytest.raises(RuntimeError):
        check_gradients(fails_late, [X], variables={"w": w})
    np.testing.assert_array_equal(w.numpy(), before)
