"""Every op against central differences in float64, with a random upstream gradient."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import nncli.autodiff as ad
from nncli.autodiff.gradcheck import check_gradients, check_second_order

RNG = np.random.default_rng(0)


def rand(shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, size=shape)


def positive(shape):
    return RNG.uniform(0.5, 2.0, size=shape)


def away_from_zero(shape):
    """Values with |x| in [0.3, 2]: kinks (abs, relu, max) stay out of the difference step."""
    return RNG.uniform(0.3, 2.0, size=shape) * RNG.choice([-1.0, 1.0], size=shape)


def check_grad(op, *inputs, second=False, **kw):
    """One line per case: the tape's gradient equals central differences (and second order)."""
    result = check_gradients(op, list(inputs), **kw)
    assert result.ok, str(result)
    if second:
        result = check_second_order(op, list(inputs))
        assert result.ok, str(result)


BROADCAST_PAIRS = [((), ()), ((2,), ()), ((), (2,)), ((3, 2), (2,)), ((3, 2), (1, 2)), ((1, 2), (3, 2)),
                   ((3, 2), ()), ((2,), (3, 2)), ((1, 2), (2,)), ((3, 2), (3, 2))]
BINARY = {
    "add": (ad.add, rand, rand),
    "sub": (ad.sub, rand, rand),
    "mul": (ad.mul, rand, rand),
    "div": (ad.div, rand, away_from_zero),
    "pow": (ad.pow, positive, rand),
    "maximum": (ad.maximum, rand, rand),
    "minimum": (ad.minimum, rand, rand),
}


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS)
def test_binary_broadcasting(name, shapes):
    op, left, right = BINARY[name]
    a, b = left(shapes[0]), right(shapes[1])
    if name in ("maximum", "minimum"):
        b = b + 0.5 * np.sign(b - a + 1e-9) * (np.abs(a - b) < 0.1)  # no ties within the step
    check_grad(op, a, b, second=name not in ("maximum", "minimum"))


@settings(max_examples=25, deadline=None)
@given(mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), st.sampled_from(["add", "mul", "div", "sub"]))
def test_binary_broadcasting_property(shapes, name):
    op, left, right = BINARY[name]
    a, b = left(shapes.input_shapes[0]), right(shapes.input_shapes[1])
    result = check_gradients(op, [a, b])
    assert result.ok, str(result)
    assert result.value.shape == shapes.result_shape


UNARY = {
    "neg": (ad.neg, rand),
    "square": (ad.square, rand),
    "sqrt": (ad.sqrt, positive),
    "exp": (ad.exp, rand),
    "log": (ad.log, positive),
    "abs": (ad.abs, away_from_zero),
    "sin": (ad.sin, rand),
    "cos": (ad.cos, rand),
    "tanh": (ad.tanh, rand),
    "sigmoid": (ad.sigmoid, rand),
    "relu": (ad.relu, away_from_zero),
    "softplus": (ad.softplus, rand),
    "clip": (lambda x: ad.clip(x, -0.5, 0.7), away_from_zero),
    "softmax": (lambda x: ad.softmax(x, axis=-1), rand),
    "softmax_axis0": (lambda x: ad.softmax(x, axis=0), rand),
    "log_softmax": (lambda x: ad.log_softmax(x, axis=-1), rand),
    "logsumexp": (lambda x: ad.logsumexp(x, axis=1), rand),
    "logsumexp_all": (lambda x: ad.logsumexp(x), rand),
    "sum": (lambda x: ad.sum(x), rand),
    "sum_axis": (lambda x: ad.sum(x, axis=0, keepdims=True), rand),
    "sum_axes": (lambda x: ad.sum(x, axis=(0, 2)), rand),
    "mean": (lambda x: ad.mean(x, axis=-1), rand),
    "max": (lambda x: ad.max(x, axis=1), rand),
    "min": (lambda x: ad.min(x), rand),
    "transpose": (lambda x: ad.transpose(x, (2, 0, 1)), rand),
    "transpose_default": (ad.transpose, rand),
    "reshape": (lambda x: ad.reshape(x, (4, -1)), rand),
    "getitem_basic": (lambda x: x[1:, ::2, 0], rand),
    "getitem_advanced": (lambda x: x[np.array([0, 2, 0]), :, np.array([1, 1, 3])], rand),
    "getitem_bool": (lambda x: x[x.numpy() > 0], rand),
    "split": (lambda x: ad.split(x, 2, axis=1)[1] * 3, rand),
    "cast": (lambda x: ad.cast(ad.cast(x, np.float32), np.float64), rand),
    "expand_dims": (lambda x: ad.expand_dims(x, 1), rand),
    "broadcast_to": (lambda x: ad.broadcast_to(x[:1], (5, 3, 2, 4)), rand),
}
SMOOTH = {"neg", "square", "sqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid", "softplus", "softmax",
          "softmax_axis0", "log_softmax", "logsumexp", "logsumexp_all", "mean", "transpose", "reshape",
          "getitem_basic", "getitem_advanced", "sum_axes"}


@pytest.mark.parametrize("name", UNARY)
def test_unary(name):
    op, sample = UNARY[name]
    x = sample((3, 2, 4))
    if name == "max" or name == "min":
        x = x + np.arange(x.size).reshape(x.shape) * 0.05  # distinct values: no ties
    tolerances = {"eps": 1e-3, "atol": 1e-4, "rtol": 1e-3} if name == "cast" else {}  # float32 rounding
    check_grad(op, x, second=name in SMOOTH, **tolerances)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                    ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 2)),
                                    ((4,), (2, 4, 3)), ((2, 3, 4), (4,))])
def test_matmul(shapes):
    check_grad(ad.matmul, rand(shapes[0]), rand(shapes[1]), second=True)


def test_where_concat_stack():
    cond = RNG.uniform(size=(3, 4)) > 0.5
    check_grad(lambda a, b: ad.where(cond, a, b), rand((3, 4)), rand((4,)), second=True)
    check_grad(lambda a, b: ad.concat([a, b], axis=1), rand((2, 3)), rand((2, 1)), second=True)
    check_grad(lambda a, b: ad.stack([a, b], axis=-1), rand((2, 3)), rand((2, 3)), second=True)
    check_grad(lambda a, b: ad.concat([a, b, a], axis=0), rand((2, 3)), rand((1, 3)))


def test_second_order_scalar_chain():
    x = ad.Variable(0.7, dtype=np.float64)
    with ad.GradientTape() as t3:
        with ad.GradientTape() as t2:
            with ad.GradientTape() as t1:
                y = ad.sin(x) * x
            dy = t1.gradient(y, x)
        d2y = t2.gradient(dy, x)
    d3y = t3.gradient(d2y, x)
    v = 0.7
    assert np.isclose(float(dy), np.cos(v) * v + np.sin(v))
    assert np.isclose(float(d2y), -np.sin(v) * v + 2 * np.cos(v))
    assert np.isclose(float(d3y), -np.cos(v) * v - 3 * np.sin(v))


def test_stable_softmax_family_at_extreme_logits():
    logits = ad.Variable([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]])
    with ad.GradientTape(persistent=True) as tape:
        outs = [ad.softmax(logits), ad.log_softmax(logits), ad.logsumexp(logits, axis=1)]
        losses = [ad.sum(o * ad.as_tensor([1.0, 2.0, 3.0]) if o.ndim == 2 else o) for o in outs]
    for out, loss in zip(outs, losses):
        assert np.all(np.isfinite(out.numpy())), out
        grad = tape.gradient(loss, logits)
        assert np.all(np.isfinite(grad.numpy())), grad
    np.testing.assert_allclose(outs[0].numpy()[0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(outs[2].numpy(), [1000.0, -1000.0 + np.log(3)], rtol=1e-6)


def test_one_hot_and_integer_inputs():
    out = ad.one_hot(np.array([2, 0]), 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(TypeError):
        ad.one_hot(np.array([0.5]), 3)


@pytest.mark.parametrize("name", sorted(set(BINARY) | set(UNARY) - {"cast"}))
def test_float32_stays_float32(name):
    """No op promotes: outputs and every gradient are float32 for float32 inputs."""
    if name in BINARY:
        op, left, right = BINARY[name]
        inputs = [ad.Variable(left((3, 2)).astype(np.float32)), ad.Variable(right((2,)).astype(np.float32))]
    else:
        op, sample = UNARY[name]
        inputs = [ad.Variable(sample((3, 2, 4)).astype(np.float32))]
    with ad.GradientTape() as tape:
        out = op(*inputs) * 2.5 + np.float64(1.0)  # NumPy float64 scalars must not promote either
    assert out.dtype == np.float32
    for g in tape.gradient(out, inputs):
        assert g.dtype == np.float32


def test_mixing_float_dtypes_is_an_error():
    with pytest.raises(TypeError, match="float32 and float64"):
        ad.Variable([1.0]) + ad.Variable([1.0], dtype=np.float64)
    # integers and python numbers adopt the tensor's float dtype
    assert (ad.Variable([1.0]) + np.array([1, 2])).dtype == np.float32


def test_a_subclass_that_defines_its_own_forward_runs_it_not_the_inherited_array_fn():
    from nncli.autodiff.ops.elementwise import Mul

    class MulPlusOne(Mul):  # a user's variant of a built-in op
        forward = staticmethod(lambda attrs, a, b: (a * b + 1, None))

    x, y = ad.Tensor([2.0]), ad.Tensor([3.0])
    assert MulPlusOne.array_fn is None and Mul.array_fn is np.multiply
    assert ad.apply(MulPlusOne, (x, y)).numpy().tolist() == [7.0]
    with ad.GradientTape() as tape:  # recorded on a tape too, through the same path
        tape.watch(x)
        out = ad.apply(MulPlusOne, (x, y))
    assert out.numpy().tolist() == [7.0] and tape.gradient(out, x).numpy().tolist() == [3.0]
