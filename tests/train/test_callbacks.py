"""The built-in callbacks' rules: Keras's EarlyStopping and ReduceLROnPlateau on the same metric sequences.

The rule is written out in tests that always run; the same sequences go through Keras itself where
it is installed (skipped cleanly without it).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from nncli.train.callbacks import EarlyStopping, ReduceLROnPlateau


class _Opt:
    def __init__(self, lr):
        self.learning_rate = lr


class _Trainer:
    """What the callbacks use of a trainer: maximize, stop_training, optimizer, history, warn."""

    def __init__(self, maximize=False, lr=0.1):
        self._maximize, self.optimizer, self.stop_training = maximize, _Opt(lr), False
        self.history, self.warnings = [], []

    def maximize(self, name):
        return self._maximize

    def warn(self, message):
        self.warnings.append(message)


def stop_epoch(values, maximize=False, **kwargs) -> int | None:
    """The epoch (from 1) at whose end nncli's EarlyStopping stops, or None."""
    cb, trainer = EarlyStopping("val_loss", **kwargs), _Trainer(maximize)
    cb.on_train_begin(trainer)
    for epoch, v in enumerate(values, 1):
        cb.on_epoch_end(trainer, epoch, {"val_loss": v})
        if trainer.stop_training:
            return epoch
    return None


def learning_rates(values, lr=1.0, **kwargs) -> list[float]:
    """The learning rate after each epoch under nncli's ReduceLROnPlateau."""
    cb, trainer = ReduceLROnPlateau("val_loss", **kwargs), _Trainer(lr=lr)
    cb.on_train_begin(trainer)
    out = []
    for epoch, v in enumerate(values, 1):
        cb.on_epoch_end(trainer, epoch, {"val_loss": v})
        out.append(trainer.optimizer.learning_rate)
    return out


FALLING_THEN_FLAT = [1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.9, 0.69, 0.7, 0.71, 0.72, 0.73]


# -- the rule, written out -------------------------------------------------------------------------
@pytest.mark.parametrize("patience, expected", [(0, 4), (1, 4), (2, 5), (3, 6), (4, 7), (5, None)])
def test_patience_counts_epochs_after_the_best_as_keras_does(patience, expected):
    # the best is epoch 3 (0.7): patience p stops p epochs after it (patience 0 and 1 both at the
    # first epoch without improvement); with 5, 0.69 at epoch 8 is a new best and the count starts again
    assert stop_epoch(FALLING_THEN_FLAT, patience=patience) == expected


def test_patience_1_stops_one_epoch_after_the_best():
    assert stop_epoch([0.5, 0.4, 0.45, 0.3], patience=1) == 3


def test_min_delta_baseline_warm_up_and_direction():
    # an improvement must be larger than min_delta
    assert stop_epoch([1.0, 0.95, 0.9, 0.85], patience=2, min_delta=0.1) == 3
    # an epoch that improves but does not beat the baseline counts towards patience
    assert stop_epoch([1.0, 1.1, 1.2], patience=2, baseline=0.5) == 2
    assert stop_epoch([1.0, 1.1, 1.2], patience=2) == 3
    # warm-up: the first epochs are not watched, so their better values are not the best to beat
    assert stop_epoch([0.1, 0.2, 0.3, 0.4, 0.5], patience=1) == 2
    assert stop_epoch([0.1, 0.2, 0.3, 0.4, 0.5], patience=1, start_from_epoch=2) == 4
    # a maximised metric improves upwards
    assert stop_epoch([0.5, 0.6, 0.55, 0.58], maximize=True, patience=1) == 3
    assert stop_epoch([0.5, 0.6, 0.55, 0.58], mode="min", patience=1) == 2
    # patience 0: the first epoch without improvement (never the first epoch, which always improves)
    assert stop_epoch([1.0, 1.0], patience=0) == 2 and stop_epoch([1.0], patience=0) is None


def test_reduce_lr_waits_patience_epochs_then_cools_down():
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    # patience 2: reductions at the ends of epochs 3, 5 and 7; 0.5 at epoch 8 is a new best
    assert learning_rates(values, factor=0.5, patience=2) == [1, 1, .5, .5, .25, .25, .125, .125, .125, .0625]
    # cooldown 2: the two epochs after a reduction are not counted (the counter is lowered first)
    assert learning_rates(values, factor=0.5, patience=2, cooldown=2) == [1, 1, .5, .5, .5, .25, .25, .25, .25, .125]
    assert learning_rates(values, factor=0.1, patience=1, min_lr=0.05)[-1] == 0.05


def test_state_round_trip_continues_exactly():
    """Half a sequence, the state saved and given to a fresh callback, the other half: as if unbroken."""
    values = FALLING_THEN_FLAT
    for make in (lambda: EarlyStopping("val_loss", patience=3), lambda: ReduceLROnPlateau("val_loss", patience=2)):
        whole, t1 = make(), _Trainer()
        whole.on_train_begin(t1)
        for e, v in enumerate(values, 1):
            whole.on_epoch_end(t1, e, {"val_loss": v})
        first, t2 = make(), _Trainer()
        first.on_train_begin(t2)
        for e, v in enumerate(values[:5], 1):
            first.on_epoch_end(t2, e, {"val_loss": v})
            t2.history.append({"epoch": e, "val_loss": v})
        second = make()
        second.set_state(first.get_state())
        second.on_train_begin(t2)
        for e, v in enumerate(values[5:], 6):
            second.on_epoch_end(t2, e, {"val_loss": v})
        assert second.get_state() == whole.get_state() and t2.optimizer.learning_rate == t1.optimizer.learning_rate


def test_a_bad_state_is_refused_and_changes_nothing():
    cb = EarlyStopping("val_loss", patience=3)
    before = cb.get_state()
    with pytest.raises(ValueError):
        cb.set_state({**before, "wait": -1})
    with pytest.raises(ValueError):
        ReduceLROnPlateau().set_state({"best": "x", "wait": 0, "cooldown_counter": 0})
    assert cb.get_state() == before


# -- the same sequences through Keras ----------------------------------------------------------------
def _keras():
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    for backend in ("jax", "torch", "tensorflow"):
        if importlib.util.find_spec(backend) is not None:
            os.environ.setdefault("KERAS_BACKEND", backend)
            break
    try:
        import keras
    except Exception as err:  # noqa: BLE001 - a Keras without a usable backend
        pytest.skip(f"keras cannot be imported here: {err}")
    return keras


def _keras_run(keras, callback, values, lr=1.0):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    callback.set_model(model)
    callback.on_train_begin()
    stopped, rates = None, []
    for epoch, v in enumerate(values):
        callback.on_epoch_end(epoch, {"val_loss": v})
        rates.append(float(model.optimizer.learning_rate))
        if model.stop_training and stopped is None:
            stopped = epoch + 1
            break
    return stopped, rates


SEQUENCES = [FALLING_THEN_FLAT, [0.5, 0.4, 0.45, 0.3, 0.31, 0.32, 0.2], [1.0] * 8, [3, 2, 1, 2, 3, 0.5, 0.6, 0.7, 0.8]]


@pytest.mark.parametrize("kwargs", [{"patience": 0}, {"patience": 1}, {"patience": 2}, {"patience": 3},
                                    {"patience": 2, "min_delta": 0.05}, {"patience": 1, "baseline": 0.35},
                                    {"patience": 1, "start_from_epoch": 2}, {"patience": 2, "mode": "max"}])
def test_early_stopping_stops_where_keras_stops(kwargs):
    keras = _keras()
    for values in SEQUENCES:
        want, _ = _keras_run(keras, keras.callbacks.EarlyStopping(monitor="val_loss", **kwargs), values)
        assert stop_epoch(values, **kwargs) == want, (values, kwargs)


@pytest.mark.parametrize("kwargs", [{"patience": 0}, {"patience": 1}, {"patience": 2, "factor": 0.5},
                                    {"patience": 1, "cooldown": 2}, {"patience": 1, "min_lr": 0.02},
                                    {"patience": 2, "min_delta": 0.05}, {"patience": 1, "mode": "max"}])
def test_reduce_lr_on_plateau_lowers_the_rate_where_keras_does(kwargs):
    keras = _keras()
    for values in SEQUENCES:
        _, want = _keras_run(keras, keras.callbacks.ReduceLROnPlateau(monitor="val_loss", **kwargs), values)
        got = learning_rates(values, **kwargs)
        assert got == pytest.approx(want, rel=1e-6), (values, kwargs)  # Keras keeps the rate in float32


# -- every registered callback ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(__import__("nncli.nn.registry", fromlist=["names"]).names("callbacks")))
def test_every_registered_callback_round_trips_its_config_and_state(name):
    from nncli.nn import registry

    cls = registry.get("callbacks", name)
    cb = cls()
    again = cls(**cb.get_config())
    assert again.get_config() == cb.get_config()
    trainer = _Trainer()
    cb.on_train_begin(trainer)
    for epoch, v in enumerate(FALLING_THEN_FLAT[:4], 1):
        cb.on_epoch_end(trainer, epoch, {"val_loss": v, "loss": v})
        trainer.history.append({"epoch": epoch, "val_loss": v, "loss": v})
    state = cb.get_state()
    fresh = cls(**cb.get_config())
    fresh.set_state(state)
    assert fresh.get_state() == state
