import numpy as np
import pandas as pd

from ulsam_search.search.records import COLUMNS, pareto_mask, pareto_set, write_table


def test_pareto_mask_minimises_and_maximises():
    values = np.array([[90, 10], [80, 12], [70, 5], [90, 10], [95, 30]])
    assert pareto_mask(values, ["max", "min"]).tolist() == [True, False, True, True, True]
    assert pareto_mask(values, ["min", "min"]).tolist() == [False, False, True, False, False]


def test_pareto_set_counts_only_feasible_complete_trials(tmp_path):
    rows = [
        dict(number=0, arch="a", top1=90.0, macs=10, status="COMPLETE", feasible=True),
        dict(number=1, arch="b", top1=99.0, macs=5, status="PRUNED", feasible=None),
        dict(number=2, arch="c", top1=0.0, macs=1, status="INFEASIBLE", feasible=False),
        dict(number=3, arch="d", top1=95.0, macs=8, status="COMPLETE", feasible=False),  # below min_top1
        dict(number=4, arch="e", top1=80.0, macs=6, status="COMPLETE", feasible=True),
        dict(number=5, arch="e", top1=80.0, macs=6, status="COMPLETE", feasible=True),  # a duplicate of 4
        dict(number=6, arch="f", top1=70.0, macs=9, status="COMPLETE", feasible=True),
    ]
    frame = pd.DataFrame(rows)
    front = pareto_set(frame, ["top1", "macs"])
    assert front["arch"].tolist() == ["e", "a"]  # sorted by MACs
    path = tmp_path / "trials.csv"
    write_table(frame.reindex(columns=COLUMNS), path)
    assert pd.read_csv(path)["number"].tolist() == list(range(7)) and not list(tmp_path.glob(".*.tmp"))
