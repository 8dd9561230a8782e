"""``--sampler tpe``: Optuna's TPE proposes each next trial from the results so far (ask and tell).

nncli keeps the sweep's record and runs the trials; Optuna only proposes. Its study lives in
memory: a resumed sweep rebuilds it from the finished trials in sweep.json. A choice is given
to Optuna as the index of its value (so any YAML value can be a choice), loguniform and uniform
as float distributions. Trials run at once are proposed with Optuna's "constant liar", so two
workers do not get the same proposal.

    tpe = TPEProposer(dims, mode="min", seed=0)
    values = tpe.ask(0)          # {"optimizer.learning_rate": 0.0031, ...}
    tpe.tell(trial_record)       # once the trial is finished (or failed)
"""

from __future__ import annotations

from typing import Any

from nncli.errors import NncliError
from nncli.sweep.record import ENDED, SweepRecord, TrialRecord
from nncli.sweep.space import Dimension, yaml_flow

__all__ = ["TPEProposer"]


class TPEProposer:
    def __init__(self, dims: list[Dimension], mode: str, seed: int):
        try:
            import optuna
        except ImportError:
            raise NncliError("--sampler tpe proposes trials with Optuna, which is not installed: "
                             "pip install 'nncli[optuna]'") from None
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.dims = optuna, {d.key: d for d in dims}
        self.distributions = {
            d.key: (CategoricalDistribution(list(range(len(d.values)))) if d.kind == "choice"
                    else FloatDistribution(d.values[0], d.values[1], log=d.kind == "loguniform")) for d in dims}
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        self.study = optuna.create_study(direction="minimize" if mode == "min" else "maximize", sampler=sampler)
        self._asked: dict[int, Any] = {}

    def probes(self) -> list[dict]:
        """Trials to validate before the sweep starts: each key at each end (or each choice), the rest at
        their first value, since TPE's own trials are known only as it goes."""
        first = {k: d.values[0] for k, d in self.dims.items()}
        out = [dict(first)]
        for key, dim in self.dims.items():
            for value in dim.values[1:]:
                out.append({**first, key: value})
        return out

    def ask(self, number: int) -> dict[str, Any]:
        trial = self.study.ask(self.distributions)
        self._asked[number] = trial
        return {k: self._value(k, trial.params[k]) for k in self.dims}

    def _value(self, key: str, raw: Any) -> Any:
        dim = self.dims[key]
        return dim.values[raw] if dim.kind == "choice" else float(raw)

    def _raw(self, key: str, value: Any) -> Any:
        dim = self.dims[key]
        if dim.kind != "choice":
            return float(value)
        return [yaml_flow(v) for v in dim.values].index(yaml_flow(value))

    def tell(self, trial: TrialRecord) -> None:
        """The trial's result: its best monitored value, or a failure."""
        states = self.optuna.trial.TrialState
        value = trial.best.value if trial.status in ENDED and trial.best is not None else None
        asked = self._asked.pop(trial.trial, None)
        if asked is not None:
            if value is None:
                self.study.tell(asked, state=states.FAIL)
            else:
                self.study.tell(asked, value)
            return
        params = {k: self._raw(k, v) for k, v in trial.overrides.items() if k in self.dims}
        self.study.add_trial(self.optuna.trial.create_trial(
            params=params, distributions=self.distributions, value=value,
            state=states.COMPLETE if value is not None else states.FAIL))

    def replay(self, record: SweepRecord) -> None:
        """Rebuild the study of a resumed sweep from its finished trials."""
        for trial in record.trials:
            if trial.status in (*ENDED, "failed"):
                self.tell(trial)
