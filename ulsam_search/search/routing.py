"""Where a proposal goes, decided without Ray or Optuna (so it is tested on its own).

Before a trial is launched its cost is counted: an architecture that breaks a cost limit is told to Optuna at once
as INFEASIBLE and never trained; one already evaluated (same experiment: canonical ARCH and seed) is told the
earlier result (DUPLICATE); one whose twin is training waits for it (WAIT). Anything else trains: a new proposal
(TRAIN), or a trial an interrupted attempt had launched, which continues from its checkpoint (RELAUNCH).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models.arch import Architecture
from .objectives import Objective

TRAIN, RELAUNCH, INFEASIBLE, DUPLICATE, WAIT = "train", "relaunch", "infeasible", "duplicate", "wait"


@dataclass(frozen=True)
class Proposal:
    """One experiment the sampler proposed: equal keys are one experiment, trained once."""

    arch: Architecture
    seed: int
    key: str
    relaunch: bool = False  # launched by an earlier attempt and interrupted


def proposal_of(space, params: Mapping[str, Any], default_seed: int, relaunch: bool = False) -> Proposal:
    """The proposal ``params`` stand for in ``space``; a search trains every ARCH with ``default_seed``, an
    ablation's cells choose their seed (the key then names it)."""
    arch, seed = space.from_params(params), space.seed_of(params)
    if seed is None:
        return Proposal(arch, default_seed, str(arch), relaunch)
    return Proposal(arch, seed, f"{arch} #{seed}", relaunch)


@dataclass(frozen=True)
class Route:
    action: str  # TRAIN, RELAUNCH, INFEASIBLE, DUPLICATE or WAIT
    violations: Mapping[str, float] = field(default_factory=dict)  # INFEASIBLE: limit -> by how much it is broken
    twin: Any = None  # DUPLICATE: the finished trial of the same experiment


def violations(cost, latency_ms: float | None, limits) -> dict[str, float]:
    """Cost limit -> by how much ``cost`` (and the latency, once measured) breaks it; the limits met are left out."""
    checks = (("max_macs", cost.macs, limits.max_macs), ("max_params", cost.params, limits.max_params),
              ("max_latency_ms", latency_ms, limits.max_latency_ms))
    return {name: value - limit for name, value, limit in checks
            if limit is not None and value is not None and value > limit}


def route_proposal(proposal: Proposal, cost, latency_ms: float | None, limits, finished: Mapping[str, Any],
                   running: Mapping[str, int]) -> Route:
    """Where ``proposal`` goes, given its cost, its latency if an earlier trial of its ARCH measured it, the cost
    limits (``constraints``), the finished experiments (key -> trial) and the running ones (key -> number)."""
    broken = violations(cost, latency_ms, limits)
    if broken:
        return Route(INFEASIBLE, violations=broken)
    if proposal.key in finished:
        return Route(DUPLICATE, twin=finished[proposal.key])
    if proposal.key in running:
        return Route(WAIT)
    return Route(RELAUNCH if proposal.relaunch else TRAIN)


def infeasible_message(broken: Mapping[str, float], cost, latency_ms: float | None, limits) -> str:
    """Which limits an infeasible proposal breaks, as its trials.csv ``error`` says."""
    says = {"max_macs": lambda: f"MACs {cost.macs:,} > max_macs {limits.max_macs:,}",
            "max_params": lambda: f"params {cost.params:,} > max_params {limits.max_params:,}",
            "max_latency_ms": lambda: f"latency {latency_ms:.3g} ms > max_latency_ms {limits.max_latency_ms:g}"}
    return "; ".join(says[name]() for name in broken)


def untrained_values(objectives: Sequence[Objective], cost, latency_ms: float | None) -> list[float]:
    """The objective values told for a proposal never trained: its costs as counted, the worst for the rest (top-1
    0 and an unmeasured latency infinite, so samplers steer away)."""
    known = {"macs": cost.macs, "params": cost.params, "latency_ms": latency_ms}
    values = []
    for objective in objectives:
        value = known.get(objective.column)
        values.append(float(value) if value is not None else objective.worst)
    return values

