"""The paper's two qualitative claims, tested on a study's trials over seeds (docs/paper.md, "The paper's claims").

- ``subspaces``: g > 1 beats g = 1. Every cell whose ULSAM placements share one g > 1 is compared with the cell
  that has the same placements at g = 1, seed by seed.
- ``replace``: replacing blocks by ULSAM keeps top-1. Every cell whose placements are all ULSAM replacements is
  compared with the baseline, seed by seed; it keeps accuracy when the 95% CI of the difference stays above
  ``-MARGIN`` points (non-inferiority: a loss smaller than the margin, shown at 95%).

A claim is judged once, on its comparisons pooled: per seed, the mean difference over every comparison (the seeds
every cell of the claim finished), then Student's t 95% CI over those seeds. Reproduced: the CI lies above 0
(``subspaces``) or above ``-MARGIN`` (``replace``); contradicted: it lies below 0 (``subspaces``) or below
``-MARGIN`` (``replace``: a loss larger than the margin, shown at 95%); otherwise inconclusive. One test per claim,
so no correction for multiplicity; the rows of single comparisons beside it are descriptive. A study without the
cells a claim needs does not test it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..config import SearchConfig
from ..models.arch import REPLACE, Architecture, Placement
from ..models.attention import DEFAULT_ATTENTION
from ..search.records import COMPLETE
from .design import study_cells
from .stats import mean_ci, paired_difference

MARGIN = 1.0  # top-1 points a replacement may lose and still "keep accuracy": about one seed std on our tasks
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
STATEMENTS = {"subspaces": "g > 1 beats g = 1 (same placements)",
              "replace": f"replacing blocks by ULSAM keeps top-1 (loses < {MARGIN:g} point vs the baseline)"}


@dataclass(frozen=True)
class Claim:
    """One claim as a study tests it: its comparisons (arch against reference), pooled, and the verdict."""

    name: str
    comparisons: pd.DataFrame  # arch, reference, n, d_top1, ci_low, ci_high, verdict
    seeds: int  # seeds pooled over
    d_top1: float
    ci_low: float
    ci_high: float
    verdict: str

    @property
    def statement(self) -> str:
        return STATEMENTS[self.name]

    def sentence(self) -> str:
        """The claim, the pooled difference with its CI, and the verdict, in one line."""
        return (f"{self.statement}: {self.verdict}; Δ top-1 {interval(self.d_top1, self.ci_low, self.ci_high)} "
                f"points over {len(self.comparisons)} comparison(s) x {self.seeds} seed(s)")


def interval(mean: float, low: float, high: float) -> str:
    """``+0.46 [-0.60, +1.52]``; ``[no CI]`` from a single seed."""
    return f"{mean:+.2f} " + ("[no CI]" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]")


def _judge(name: str, low: float, high: float) -> str:
    """The verdict a 95% CI gives a claim (NaN, from a single seed: inconclusive)."""
    if math.isnan(low):
        return INCONCLUSIVE
    if name == "subspaces":
        return REPRODUCED if low > 0 else CONTRADICTED if high < 0 else INCONCLUSIVE
    return REPRODUCED if low > -MARGIN else CONTRADICTED if high < -MARGIN else INCONCLUSIVE


def _ulsam_only(arch: Architecture) -> bool:
    return bool(arch.placements) and all(p.attention == DEFAULT_ATTENTION for p in arch.placements)


def _pairs(baseline: str, archs: list[str]) -> dict[str, list[tuple[str, str]]]:
    """claim -> [(arch, reference)]: g > 1 against the same placements at g = 1; all-replace cells against the
    baseline."""
    parsed = {a: Architecture.parse(a) for a in archs}
    present = set(parsed)
    pairs: dict[str, list[tuple[str, str]]] = {"subspaces": [], "replace": []}
    for text, arch in parsed.items():
        if not _ulsam_only(arch):
            continue
        groups = {p.groups for p in arch.placements}
        if len(groups) == 1 and groups != {1}:
            at_one = Architecture(arch.backbone, arch.width,
                                  tuple(Placement(p.block, p.op, 1, p.attention) for p in arch.placements))
            if str(at_one) in present:
                pairs["subspaces"].append((text, str(at_one)))
        if all(p.op == REPLACE for p in arch.placements):
            pairs["replace"].append((text, baseline))
    return pairs


def paper_claims(done: pd.DataFrame, baseline: str, archs: list[str]) -> list[Claim]:
    """The claims the cells ``archs`` can test, from ``done`` (one row per finished ARCH and seed: arch, seed,
    top1); an empty list when they test none."""
    wide = done.pivot_table(index="seed", columns="arch", values="top1", aggfunc="first")  # a duplicate: a copy
    claims = []
    for name, pairs in _pairs(baseline, [a for a in archs if a in wide.columns]).items():
        pairs = [(a, r) for a, r in pairs if r in wide.columns]
        if not pairs:
            continue
        rows = []
        for arch, reference in pairs:
            d = paired_difference(wide[arch].dropna(), wide[reference].dropna())
            mean, low, high = d["mean"], d["ci_low"], d["ci_high"]
            rows.append({"arch": arch, "reference": reference, "n": d["n"], "d_top1": mean, "ci_low": low,
                         "ci_high": high, "verdict": _judge(name, low, high)})
        pooled = pd.concat([wide[a] - wide[r] for a, r in pairs], axis=1).dropna().mean(axis=1)
        if pooled.empty:  # no seed that every cell of the claim finished: nothing to judge yet
            continue
        mean, _, low, high = mean_ci(pooled.to_numpy())
        claims.append(Claim(name, pd.DataFrame(rows), len(pooled), mean, low, high, _judge(name, low, high)))
    return claims


def study_claims(config: SearchConfig, table: pd.DataFrame) -> list[Claim]:
    """The claims a study's cells test, from its trials table (every status; the COMPLETE trials count)."""
    baseline, cells = study_cells(config)
    return paper_claims(table[table["status"] == COMPLETE], baseline, [cell.arch for cell in cells])


def claims_frame(claims: list[Claim]) -> pd.DataFrame:
    """claims.csv: every comparison of every claim, then each claim's pooled row (arch ``pooled``)."""
    rows = []
    for claim in claims:
        rows += [{"claim": claim.name, **row} for row in claim.comparisons.to_dict("records")]
        rows.append({"claim": claim.name, "arch": "pooled", "reference": "", "n": claim.seeds, "d_top1": claim.d_top1,
                     "ci_low": claim.ci_low, "ci_high": claim.ci_high, "verdict": claim.verdict})
    return pd.DataFrame(rows, columns=["claim", "arch", "reference", "n", "d_top1", "ci_low", "ci_high", "verdict"])
