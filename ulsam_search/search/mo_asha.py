"""Multi-objective ASHA for Ray Tune: promote at each rung by non-dominated sorting, not by one metric.

Ray's ASHA ranks trials by a single metric, so a cheap architecture that is slightly less accurate at a rung is
stopped even when it is on the accuracy/cost front. Here a trial reaching a rung (``grace_period * rf**k`` epochs)
is compared with every trial recorded at that rung on (accuracy at the rung, MACs, params, ...): trials are ordered
by non-dominated front, then by crowding distance (NSGA-II's order), and the trial continues if it is within the
first ``ceil(n / reduction_factor)`` of the ``n`` recorded so far (ASHA's asynchronous rule). Stopped trial ids are
kept in ``stopped`` so the searcher tells Optuna they were PRUNED, never COMPLETE.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler


def nondominated_order(values: np.ndarray, directions: Sequence[str]) -> list[int]:
    """Row indices best first: by non-dominated front, then by crowding distance (largest first) within a front."""
    signs = np.array([1.0 if d == "min" else -1.0 for d in directions])
    costs = np.asarray(values, dtype=float) * signs
    remaining = list(range(len(costs)))
    order: list[int] = []
    while remaining:
        sub = costs[remaining]
        front = [remaining[i] for i in range(len(sub))
                 if not (np.all(sub <= sub[i], axis=1) & np.any(sub < sub[i], axis=1)).any()]
        order += sorted(front, key=lambda i: -_crowding(costs[front])[front.index(i)])
        remaining = [i for i in remaining if i not in front]
    return order


def _crowding(costs: np.ndarray) -> np.ndarray:
    n, k = costs.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(k):
        order = np.argsort(costs[:, j], kind="stable")
        span = costs[order[-1], j] - costs[order[0], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (costs[order[2:], j] - costs[order[:-2], j]) / span
    return distance


class MultiObjectiveASHA(FIFOScheduler):
    """Asynchronous successive halving with a Pareto promotion rule.

    Args:
        objectives: ``(result key, "min" | "max")`` pairs, e.g. ``[("top1", "max"), ("macs", "min")]``.
        max_t: the full budget in ``time_attr`` units (epochs); trials reaching it are never stopped.
        grace_period: the first rung; later rungs multiply it by ``reduction_factor``.

    A result with ``baseline: True`` (the backbone without ULSAM) is recorded at the rungs but never stopped:
    every report measures the others against it.
    """

    def __init__(self, objectives: Sequence[tuple[str, str]], max_t: int, *, time_attr: str = "epoch",
                 grace_period: int = 1, reduction_factor: float = 2.0) -> None:
        super().__init__()
        if reduction_factor <= 1:
            raise ValueError("reduction_factor must be > 1")
        self.objectives = list(objectives)
        self.time_attr, self.max_t, self.reduction_factor = time_attr, max_t, reduction_factor
        self.rungs: list[int] = []
        rung = grace_period
        while rung < max_t:
            self.rungs.append(int(rung))
            rung = math.ceil(rung * reduction_factor)
        self.recorded: dict[int, dict[str, list[float]]] = {rung: {} for rung in self.rungs}
        self.stopped: set[str] = set()

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # objectives are given explicitly; Tune's single metric/mode does not apply

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self.decide(trial.trial_id, result)

    def decide(self, trial_id: str, result: dict) -> str:
        """CONTINUE or STOP for a result of ``trial_id`` (public so the rule can be tested without a cluster).

        A trial's value at a rung is its epoch at that rung (``history``), so a trial relaunched from a checkpoint
        is recorded at the rungs it passed before, with what it had there. It is not judged again at the rungs it
        was promoted through before (``promoted_through``, the last epoch after which it was let go on).
        """
        if result.get("error") or self.time_attr not in result:
            return TrialScheduler.CONTINUE
        epochs = {entry["epoch"]: entry for entry in result.get("history") or []}
        for rung in self.rungs:
            if result[self.time_attr] < rung or trial_id in self.recorded[rung]:
                continue
            at_rung = {**result, **epochs.get(rung, {})}
            self.recorded[rung][trial_id] = [float(at_rung[key]) for key, _ in self.objectives]
            judged = rung > result.get("promoted_through", 0) and not result.get("baseline")
            if judged and not self._promotable(rung, trial_id):
                self.stopped.add(trial_id)
                return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def restore(self, trial_id: str, result: dict) -> None:
        """Record a trial that ended before this scheduler existed (a resumed run) at every rung it reached."""
        self.decide(trial_id, {**result, "promoted_through": math.inf})

    def _promotable(self, rung: int, trial_id: str) -> bool:
        ids = list(self.recorded[rung])
        order = nondominated_order(np.array([self.recorded[rung][i] for i in ids]), [d for _, d in self.objectives])
        keep = max(1, math.ceil(len(ids) / self.reduction_factor))
        return ids.index(trial_id) in order[:keep]

    def debug_string(self) -> str:
        return f"MultiObjectiveASHA: rungs {self.rungs}, {len(self.stopped)} stopped"
