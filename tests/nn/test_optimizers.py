"""Optimizers: first steps against the update formulas in numpy, clipping, schedules, state, tracing."""

import numpy as np
import pytest

import nncli.autodiff as ad
from nncli.autodiff import parallel
from nncli.nn import optimizer_base, optimizers, registry
from nncli.nn.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop
from nncli.nn.schedules import ExponentialDecay, PiecewiseConstantDecay

RNG = np.random.default_rng(0)
SHAPES = [(3, 2), (2,)]
START = [RNG.standard_normal(s) for s in SHAPES]
GRADS = [[RNG.standard_normal(s) for s in SHAPES] for _ in range(3)]  # three steps


# -- the update rules, written out plainly (float64) ---------------------------------
def ref_sgd(w, gs, learning_rate=0.01, momentum=0.0, nesterov=False):
    m = np.zeros_like(w)
    for g in gs:
        if momentum:
            m = momentum * m - learning_rate * g
            w = w + (momentum * m - learning_rate * g if nesterov else m)
        else:
            w = w - learning_rate * g
        yield w


def ref_adam(w, gs, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
             weight_decay=0.0):
    m = v = vmax = np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        w = w - w * weight_decay * learning_rate
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        vmax = np.maximum(vmax, v)
        rate = learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        w = w - rate * m / (np.sqrt(vmax if amsgrad else v) + epsilon)
        yield w


def ref_rmsprop(w, gs, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    v = mo = a = np.zeros_like(w)
    for g in gs:
        v = rho * v + (1 - rho) * g * g
        a = rho * a + (1 - rho) * g
        increment = learning_rate * g / np.sqrt((v - a * a if centered else v) + epsilon)
        mo = momentum * mo + increment
        w = w - (mo if momentum else increment)
        yield w


def ref_adagrad(w, gs, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
    acc = np.full_like(w, initial_accumulator_value)
    for g in gs:
        acc = acc + g * g
        w = w - learning_rate * g / np.sqrt(acc + epsilon)
        yield w


CASES = [
    (SGD, ref_sgd, {}),
    (SGD, ref_sgd, {"learning_rate": 0.1, "momentum": 0.9}),
    (SGD, ref_sgd, {"learning_rate": 0.1, "momentum": 0.5, "nesterov": True}),
    (Adam, ref_adam, {}),
    (Adam, ref_adam, {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.9, "epsilon": 0.1}),
    (Adam, ref_adam, {"learning_rate": 0.01, "amsgrad": True, "beta_2": 0.5}),
    (AdamW, ref_adam, {"weight_decay": 0.004}),
    (AdamW, ref_adam, {"learning_rate": 0.1, "weight_decay": 0.5, "epsilon": 0.01}),
    (RMSprop, ref_rmsprop, {}),
    (RMSprop, ref_rmsprop, {"learning_rate": 0.01, "rho": 0.5, "momentum": 0.9, "epsilon": 0.1}),
    (RMSprop, ref_rmsprop, {"learning_rate": 0.01, "centered": True, "epsilon": 0.5}),
    (Adagrad, ref_adagrad, {}),
    (Adagrad, ref_adagrad, {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "epsilon": 0.01}),
]
IDS = [f"{cls.__name__}-{'-'.join(kw)}" for cls, _, kw in CASES]


def variables(dtype="float64"):
    return [ad.Variable(w, dtype=dtype) for w in START]


@pytest.mark.parametrize("cls, ref, kwargs", CASES, ids=IDS)
def test_first_steps_follow_the_update_formula(cls, ref, kwargs):
    params, opt = variables(), cls(**kwargs)
    expected = [list(ref(w, [step[i] for step in GRADS], **kwargs)) for i, w in enumerate(START)]
    for t, grads in enumerate(GRADS):
        opt.update(params, [ad.Tensor(g, dtype="float64") for g in grads])
        for i, p in enumerate(params):
            np.testing.assert_allclose(p.numpy(), expected[i][t], rtol=1e-12, atol=1e-15)
    assert opt.iterations == 3


@pytest.mark.parametrize("cls, ref, kwargs", CASES, ids=IDS)
def test_float32_stays_float32_and_slots_are_kept_in_place(cls, ref, kwargs):
    params, opt = variables("float32"), cls(**kwargs)
    opt.update(params, [g.astype(np.float32) for g in GRADS[0]])
    slots = [arr for arr in opt._slots[0].values()]
    opt.update(params, [g.astype(np.float64) for g in GRADS[1]])  # cast to the parameter's dtype
    assert all(p.dtype == np.float32 for p in params)
    assert all(a.dtype == np.float32 for a in opt.get_state().values() if a.ndim)
    assert all(a is b for a, b in zip(slots, opt._slots[0].values()))
    want = [list(ref(w, [g[i] for g in GRADS[:2]], **kwargs))[-1] for i, w in enumerate(START)]
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.numpy(), w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, ref, kwargs", CASES, ids=IDS)
def test_state_round_trip_continues_bit_for_bit(cls, ref, kwargs):
    steps = GRADS + [[g * -0.5 for g in gs] for gs in GRADS]  # six steps
    straight, opt = variables("float32"), cls(**kwargs)
    for gs in steps:
        opt.update(straight, [g.astype(np.float32) for g in gs])
    resumed, first = variables("float32"), cls(**kwargs)
    for gs in steps[:3]:
        first.update(resumed, [g.astype(np.float32) for g in gs])
    state = first.get_state()
    assert state["iterations"] == 3
    assert {k for k in state if k != "iterations"} == {f"{i}.{n}" for i in range(2) for n in first.slot_names}
    second = cls(**first.get_config())
    second.set_state(state)
    for gs in steps[3:]:
        second.update(resumed, [g.astype(np.float32) for g in gs])
    for a, b in zip(straight, resumed):
        assert np.array_equal(a.numpy(), b.numpy())
    for key, value in opt.get_state().items():
        assert np.array_equal(value, second.get_state()[key])


def test_set_state_checks_the_slots():
    opt = Adam()
    opt.update(variables(), GRADS[0])
    state = opt.get_state()
    with pytest.raises(ValueError, match="missing"):
        Adam().set_state({k: v for k, v in state.items() if k != "1.v"})
    with pytest.raises(ValueError, match="unexpected"):
        Adam().set_state({**state, "0.vhat": state["0.v"]})
    fresh = Adam()
    fresh.set_state(state)
    with pytest.raises(ValueError, match="shapes"):  # restored for (3, 2) and (2,), used for others
        fresh.update([ad.Variable(np.zeros(4))], [np.ones(4)])


def test_a_different_parameter_list_is_an_error():
    opt, params = SGD(momentum=0.9), variables()
    opt.update(params, GRADS[0])
    with pytest.raises(ValueError, match="2 parameters"):
        opt.update(params[:1], GRADS[0][:1])
    with pytest.raises(ValueError, match="shape"):
        opt.update(params, [GRADS[0][0], np.ones(3)])


def test_none_gradients_are_skipped():
    params, opt = variables(), Adam(0.1)
    opt.update(params, [None, GRADS[0][1]])
    assert np.array_equal(params[0].numpy(), START[0]) and not np.array_equal(params[1].numpy(), START[1])
    assert not opt.get_state()["0.m"].any()
    assert opt.iterations == 1


@pytest.mark.parametrize("kwargs, clip", [
    ({"clipvalue": 0.5}, lambda gs: [np.clip(g, -0.5, 0.5) for g in gs]),
    ({"clipnorm": 1.0}, lambda gs: [g / max(np.linalg.norm(g), 1.0) for g in gs]),
    ({"global_clipnorm": 1.0},
     lambda gs: [g / max(np.sqrt(sum((h * h).sum() for h in gs)), 1.0) for g in gs]),
])
def test_gradient_clipping(kwargs, clip):
    grads = [g * 3 for g in GRADS[0]]
    grads[1] = grads[1] * 0.01  # this one stays under clipnorm
    before = [g.copy() for g in grads]
    params, opt = variables(), SGD(learning_rate=1.0, **kwargs)
    opt.update(params, grads)
    for p, w, g in zip(params, START, clip(grads)):
        np.testing.assert_allclose(w - p.numpy(), g, rtol=1e-12)
    assert all(np.array_equal(a, b) for a, b in zip(grads, before))  # the caller's arrays untouched


def test_clipping_options_are_exclusive_and_positive():
    with pytest.raises(ValueError, match="only one"):
        SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="clipnorm"):
        Adam(clipnorm=-1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        Adam(learning_rate=-0.1)


def test_schedule_is_evaluated_at_the_live_step_count():
    w = ad.Variable(np.zeros(1))
    opt = SGD(learning_rate=PiecewiseConstantDecay([1], [1.0, 0.1]))
    rates = []
    for _ in range(4):
        rates.append(opt.current_learning_rate())
        before = w.numpy().copy()
        opt.update([w], [np.ones(1)])
        assert before - w.numpy() == pytest.approx(rates[-1])
    assert rates == [1.0, 1.0, 0.1, 0.1]


def test_traced_train_step_equals_eager_steps():
    x = [RNG.standard_normal((4, 3)) for _ in range(5)]
    y = [RNG.standard_normal((4, 2)) for _ in range(5)]

    def setup():
        w, b = ad.Variable(START[0].copy(), dtype="float64"), ad.Variable(START[1].copy(), dtype="float64")
        opt = Adam(learning_rate=ExponentialDecay(0.1, 2, 0.5), clipnorm=0.5)

        def step(inputs, trues):
            with ad.GradientTape() as tape:
                loss = ad.mean(ad.square(inputs @ w + b - trues))
            grads = tape.gradient(loss, [w, b])
            opt.update([w, b], grads)
            return loss
        return [w, b], opt, step

    eager_params, eager_opt, eager_step = setup()
    traced_params, traced_opt, step = setup()
    traced = ad.function(step)
    for xi, yi in zip(x, y):
        eager_loss = eager_step(ad.Tensor(xi, dtype="float64"), ad.Tensor(yi, dtype="float64"))
        traced_loss = traced(ad.Tensor(xi, dtype="float64"), ad.Tensor(yi, dtype="float64"))
        np.testing.assert_allclose(traced_loss.numpy(), eager_loss.numpy(), rtol=1e-12)
    assert traced.trace_count == 1 and traced_opt.iterations == eager_opt.iterations == 5
    for a, b in zip(traced_params, eager_params):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert not np.allclose(traced_params[0].numpy(), START[0])


def test_apply_gradients_is_update():
    a, b = variables(), variables()
    opt_a, opt_b = RMSprop(0.1), RMSprop(0.1)
    opt_a.update(a, GRADS[0])
    opt_b.apply_gradients(zip(GRADS[0], b))
    assert all(np.array_equal(p.numpy(), q.numpy()) for p, q in zip(a, b))


def test_registry_aliases_and_config_round_trip():
    for alias, cls in {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}.items():
        assert registry.get("optimizers", alias) is cls
    defaults = {"SGD": 0.01, "Adam": 0.001, "AdamW": 0.001, "RMSprop": 0.001, "Adagrad": 0.001}
    assert set(registry.names("optimizers")) == set(defaults)
    for name, lr in defaults.items():
        opt = registry.get("optimizers", name)()
        assert opt.learning_rate == lr
        assert type(opt)(**opt.get_config()).get_config() == opt.get_config()
    scheduled = Adam(learning_rate=ExponentialDecay(0.1, 10, 0.5), clipvalue=1.0)
    config = scheduled.get_config()
    assert config["learning_rate"] == {"type": "ExponentialDecay", "initial_learning_rate": 0.1,
                                       "decay_steps": 10, "decay_rate": 0.5, "staircase": False}
    rebuilt = optimizers.get({"type": "adam", **config})
    assert rebuilt.get_config() == config and rebuilt.current_learning_rate() == 0.1


def test_adam_matches_torch_when_epsilon_is_negligible():
    torch = pytest.importorskip("torch")
    # torch adds eps to sqrt(v_hat) after bias correction, Keras to sqrt(v) before; with a
    # negligible epsilon both are Adam.
    w = ad.Variable(START[0], dtype="float64")
    tw = torch.tensor(START[0], dtype=torch.float64, requires_grad=True)
    opt = Adam(learning_rate=0.05, epsilon=1e-14)
    topt = torch.optim.Adam([tw], lr=0.05, betas=(0.9, 0.999), eps=1e-14)
    for grads in GRADS:
        opt.update([w], [grads[0]])
        tw.grad = torch.tensor(grads[0], dtype=torch.float64)
        topt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-10)


@pytest.fixture(params=[1, 2, 3], ids=["1-thread", "2-threads", "3-threads"])
def threads(request, monkeypatch):
    """Run with this many threads, and spans of 5 elements from the first element on, so that
    spans cut through parameters (on one thread the update is one pass over the flat buffers)."""
    monkeypatch.setattr(optimizer_base, "PARALLEL_MIN", 1)
    monkeypatch.setattr(optimizer_base, "SPAN", 5)
    parallel.set_threads(request.param)
    yield request.param
    parallel.set_threads(None)


@pytest.mark.parametrize("kwargs", [{}, {"amsgrad": True}, {"clipnorm": 0.5}, {"learning_rate": 0.01}],
                         ids=["plain", "amsgrad", "clipnorm", "lr"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_over_flat_slots_is_the_per_parameter_step_bit_for_bit(kwargs, dtype, threads):
    """Adam updates all parameters with numpy calls over one flat buffer per slot (cut into spans
    run on several threads); it must give exactly what one update per parameter gives (the same
    elementwise operations)."""
    rng = np.random.default_rng(3)
    shapes = [(3, 4), (4,), (2, 2, 2), ()]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    fused, single = ([ad.Variable(a.copy(), dtype=dtype) for a in start],
                     [ad.Variable(a.copy(), dtype=dtype) for a in start])
    opt_fused, opt_single = Adam(**kwargs), Adam(**kwargs)
    for _ in range(5):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        opt_fused.update(fused, grads)
        opt_single.build(single)  # the per-parameter update of the base class, on the same slots
        optimizers.Optimizer._apply(opt_single, [v._data for v in single], tuple(range(len(shapes))), grads)
    assert opt_fused._flat is not None and opt_fused._flat["m"].dtype == np.dtype(dtype)
    spans = opt_fused._spans([v._data for v in fused])
    if threads == 1:
        assert spans is None
    else:  # 25 elements in spans of about 5, a whole number per thread, covering the buffer once
        assert len(spans) % threads == 0 and len(spans) >= 4
        assert [s[0] for s in spans[1:]] == [s[1] for s in spans[:-1]] and spans[-1][1] == 25
        assert sum(b - a for s in spans for _, a, b, _, _ in s[2]) == 25
    for a, b in zip(fused, single):
        assert a.dtype == np.dtype(dtype) and np.array_equal(a.numpy(), b.numpy())
    for key, value in opt_fused.get_state().items():
        assert np.array_equal(value, opt_single.get_state()[key])


def test_adam_spans_only_contiguous_parameters_of_a_large_buffer(monkeypatch):
    parallel.set_threads(2)
    try:
        params = [ad.Variable(np.ones((4, 3), np.float32)), ad.Variable(np.ones(5, np.float32))]
        opt = Adam()
        opt.update(params, [np.ones((4, 3), np.float32), np.ones(5, np.float32)])
        arrays = [p._data for p in params]
        assert opt._spans(arrays) is None  # 17 elements: below PARALLEL_MIN, one pass on this thread
        monkeypatch.setattr(optimizer_base, "PARALLEL_MIN", 1)
        assert len(opt._spans(arrays)) == 2
        # a flat view of a transposed array would be a copy, and its update would be lost
        assert opt._spans([arrays[0].T.copy().T, arrays[1]]) is None
    finally:
        parallel.set_threads(None)


def test_adam_with_a_missing_gradient_or_mixed_dtypes_updates_per_parameter():
    params = [ad.Variable(np.ones(3), dtype="float32"), ad.Variable(np.ones(2), dtype="float64")]
    opt = Adam(learning_rate=0.1)
    opt.update(params, [np.ones(3, np.float32), np.ones(2)])
    assert opt._flat is None and params[1].dtype == np.float64
    same = [ad.Variable(np.ones(3, np.float32)), ad.Variable(np.ones(2, np.float32))]
    opt = Adam(learning_rate=0.1)
    opt.update(same, [None, np.ones(2, np.float32)])  # only the second moves
    assert opt._flat is not None
    assert np.array_equal(same[0].numpy(), np.ones(3, np.float32)) and (same[1].numpy() < 1).all()
