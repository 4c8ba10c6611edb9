"""Optuna's samplers (TPE, NSGA-II, the Gaussian process) behind the ask/tell interface, as
baselines: what users reach for first.

The Gaussian-process sampler (``GPSampler``: log expected hypervolume improvement with
several objectives) models every categorical choice with its own kernel dimension; each ask
refits the process on every trial so far, so a trial costs seconds after a few hundred and
it suits budgets of hundreds, not thousands.

Optuna is an optional extra. Its samplers may propose an arch that was already evaluated;
such a trial is told its known result at once (free) and the sampler is asked again, so the
budget is only spent on new archs.

Constraints and objective limits reach the sampler as each finished trial's constraint
values: the excess over each limit in minimisation form (value minus limit; <= 0 is
feasible), also kept as the user attribute ``constraints``; the samplers read them from
``Trial.set_constraint`` (Optuna 5).
A result lacking a constraint metric carries ``MISSING_CONSTRAINT_VIOLATION`` there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from hwnas.errors import HwnasError
from hwnas.pareto import Objective
from hwnas.search.base import Metrics, Searcher
from hwnas.space import Arch, Space


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise HwnasError(
            "optuna searchers need the optional extra: pip install 'hwnas[optuna]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaSearch(Searcher):
    """Runs an Optuna sampler; ``sampler`` is ``"tpe"``, ``"nsga2"`` or ``"gp"``.

    ``startup``: random trials before TPE or the Gaussian process model anything;
    ``deterministic``: tells the Gaussian process the objectives carry no noise (true of a
    table, not of measured latency)."""

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        seed: int = 0,
        sampler: str = "tpe",
        population_size: int = 20,
        max_retries: int = 20,
        startup: int = 10,
        deterministic: bool = False,
        constraints: Sequence[Objective] = (),
    ) -> None:
        super().__init__(space, objectives, seed, constraints)
        optuna = _optuna()
        # limits on objectives steer the sampler just as constraints do (``excess`` order)
        names = [c.name for c in (*self.constraints, *self.limited)]
        self._constraint_keys = [
            n if names.count(n) == 1 else f"{n}#{j}" for j, n in enumerate(names)
        ]
        if sampler == "tpe":
            with warnings.catch_warnings():  # `group` is marked experimental; it handles conditions
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                made = optuna.samplers.TPESampler(
                    seed=seed, multivariate=True, group=True, n_startup_trials=startup
                )
            self.batch_size = 1
        elif sampler == "gp":
            with warnings.catch_warnings():  # `deterministic_objective` is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                made = optuna.samplers.GPSampler(
                    seed=seed, n_startup_trials=startup, deterministic_objective=deterministic
                )
            self.batch_size = 1
        elif sampler == "nsga2":
            made = optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)
            self.batch_size = population_size
        else:
            raise HwnasError(f"unknown optuna sampler {sampler!r}; use tpe, nsga2 or gp")
        self._optuna = optuna
        self.max_retries = max_retries
        self.study = optuna.create_study(
            directions=["minimize" if o.direction == "min" else "maximize" for o in objectives],
            sampler=made,
        )
        self._trials: dict[str, Any] = {}
        self._results: dict[str, Metrics] = {}
        self._distributions = {
            c.name: optuna.distributions.CategoricalDistribution(c.options) for c in space.choices
        }

    def _suggest(self, trial: Any) -> Arch:
        values: dict[str, Any] = {}
        for c in self.space.choices:
            if c.condition is None or c.condition.holds(values):
                values[c.name] = trial.suggest_categorical(c.name, c.options)
        return self.space.make(values)

    def _propose(self, n: int) -> list[Arch]:
        out: list[Arch] = []
        for _ in range(n):
            for _ in range(self.max_retries):
                trial = self.study.ask()
                arch = self._suggest(trial)
                if arch.key in self._results:
                    self._finish(trial, self._results[arch.key])
                elif self.is_new(arch) and arch.key not in {a.key for a in out}:
                    self._trials[arch.key] = trial
                    out.append(arch)
                    break
                else:
                    self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            else:
                out.extend(self.fresh(1, lambda: self.space.sample(self.rng), taken=out))
        return out

    def _finish(self, trial: Any, values: Metrics) -> None:
        if values is None:
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        else:
            if self._constraint_keys:
                excess = [float(e) for e in self.excess(values)]
                trial.set_user_attr(_USER_ATTR, excess)
                for key, value in zip(self._constraint_keys, excess, strict=True):
                    trial.set_constraint(key, value)
            self.study.tell(trial, [float(values[o.name]) for o in self.objectives])

    def tell(self, archs: Sequence[Arch], metrics: Sequence[Metrics]) -> None:
        for arch, values in zip(archs, metrics, strict=True):
            if arch.key in self._results:
                continue
            self._results[arch.key] = values
            trial = self._trials.pop(arch.key, None)
            if trial is not None:
                self._finish(trial, values)
            else:
                self._add_replayed(arch, values)
        super().tell(archs, metrics)

    def _add_replayed(self, arch: Arch, values: Metrics) -> None:
        """A result from the store that this sampler never asked for (resume)."""
        params = {n: v for n, v in arch.to_dict().items() if v is not None}
        attrs: dict[str, dict[str, Any]] = {}
        excess = (
            [float(e) for e in self.excess(values)]
            if self._constraint_keys and values is not None
            else None
        )
        if excess is not None:
            attrs["user_attrs"] = {_USER_ATTR: excess}
        frozen = self._optuna.trial.create_trial(
            params=params,
            distributions={n: self._distributions[n] for n in params},
            values=None if values is None else [float(values[o.name]) for o in self.objectives],
            state=(
                self._optuna.trial.TrialState.FAIL
                if values is None
                else self._optuna.trial.TrialState.COMPLETE
            ),
            **attrs,
        )
        if excess is not None:
            for key, value in zip(self._constraint_keys, excess, strict=True):
                frozen.set_constraint(key, value)
        self.study.add_trial(frozen)


_USER_ATTR = "constraints"
