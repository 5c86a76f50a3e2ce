"""The confirm stage: which front members it picks, its statistics, and the whole stage through the real CLI on a
tabular benchmark with planted effects and on real training killed midway."""

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from faults import STUCK_RUN_S
from ulsam_search.ablation.confirm import confirmed_front, pooled_std, select_members
from ulsam_search.ablation.design import study_cells
from ulsam_search.config import SearchConfig
from ulsam_search.errors import InvalidInput
from ulsam_search.search.backends.table import TABLE_COLUMNS

EXE = str(Path(sys.executable).parent / "ulsam-search")
B = "mobilenet_v1@0.25"


def _front() -> pd.DataFrame:
    """A baseline and five members; by hand (each objective scaled to the members' range, accuracy negated):
    scaled (accuracy, MACs) A (1, 0), B (.667, .25), C (.5, .375), D (.111, .75), E (0, 1)."""
    return pd.DataFrame({"arch": ["base", "A", "B", "C", "D", "E"], "top1": [90, 85, 88, 89.5, 93, 94],
                         "macs": [100, 60, 80, 90, 120, 140]})


def test_front_members_are_picked_by_accuracy_knee_or_crowding():
    front = _front()
    assert select_members(front, ["top1", "macs"], "base", 3, "front") == ["E", "D", "C"]
    # knee: C is nearest the utopia point (norm .625); then by distance from C: B .208, D .540, A .625, E .80
    assert select_members(front, ["top1", "macs"], "base", 4, "knee") == ["C", "B", "D", "A"]
    # crowding: A and E are extremes (infinite; the more accurate first), then D 1.125, C 1.056, B .875
    assert select_members(front, ["top1", "macs"], "base", 5, "crowding") == ["E", "A", "D", "C", "B"]
    assert select_members(front, ["top1", "macs"], "base", 10, "front") == ["E", "D", "C", "B", "A"]
    with pytest.raises(InvalidInput, match="holds no architecture besides the baseline: nothing to confirm"):
        select_members(front[front["arch"] == "base"], ["top1", "macs"], "base", 2, "front")
    with pytest.raises(InvalidInput, match="no Pareto set yet"):
        select_members(front.iloc[0:0], ["top1", "macs"], "base", 2, "front")


def test_pooled_seed_noise_and_the_confirmed_front_by_hand():
    rows = pd.DataFrame({"arch": ["a"] * 3 + ["b"] * 2, "top1": [1.0, 2.0, 3.0, 5.0, 7.0]})
    # variances 1 (2 dof) and 2 (1 dof): sqrt((2 * 1 + 1 * 2) / 3)
    assert pooled_std(rows) == pytest.approx(math.sqrt(4 / 3))
    stats = pd.DataFrame({"arch": ["base", "x", "y", "z"], "top1_mean": [90.0, 91.0, 89.0, 80.0],
                          "top1_ci_low": [89.0, 90.0, 88.5, 79.0], "top1_ci_high": [91.0, 92.0, 89.5, 81.0],
                          "macs": [100, 100, 110, 120]})
    marked = confirmed_front(stats, ["top1", "macs"]).set_index("arch")
    assert marked["front"].tolist() == [False, True, False, False]
    assert marked["dominated_by"].tolist() == ["x", "", "x", "x"]
    # base's CI [89, 91] overlaps x's [90, 92]; y's [88.5, 89.5] and z's do not reach x's low end, 90
    assert marked["within_ci"].tolist() == [True, False, False, False]


def test_an_archs_study_compares_the_archs_as_given():
    config = SearchConfig(backbone="mobilenet_v1", width=0.25, study={"kind": "archs", "seeds": 2, "archs": [
        f"{B}:8+1", f"{B}:7=2", f"{B}:8+1", B]})
    baseline, cells = study_cells(config)
    assert baseline == B and [(c.row, c.groups, c.arch) for c in cells] == [
        (f"{B}:8+1", 0, f"{B}:8+1"), (f"{B}:7=2", 0, f"{B}:7=2")]  # once each, as given, the baseline apart
    other = SearchConfig(backbone="mobilenet_v1", width=0.25, study={"kind": "archs", "archs": ["mobilenet_v2:12=4"]})
    with pytest.raises(InvalidInput, match=r"study.archs.0: mobilenet_v2:12=4 is not on mobilenet_v1@0.25"):
        study_cells(other)


# The tabular run: MobileNet-V1@0.25, blocks 8 and 9 with g=1 (9 ARCHs). Seed 0 (the search's) makes a front of
# six, most accurate first: 8+1,9+1 (65), 8+1 (64), the baseline (63), 8=1,9+1 (62), 8=1 (61), 8=1,9=1 (60).
# Seeds 1-3 (the confirm stage's) plant: 8+1,9+1 better by 3, 8+1 worse by 3, 8=1,9+1 equal to the baseline.
SEARCH_TOP1 = {B: 63, f"{B}:8=1,9=1": 60, f"{B}:8=1": 61, f"{B}:9=1": 50, f"{B}:8=1,9+1": 62, f"{B}:8+1,9=1": 50,
               f"{B}:8+1": 64, f"{B}:9+1": 50, f"{B}:8+1,9+1": 65}
BASE = {1: 90.0, 2: 91.0, 3: 92.0}
PLANTED = {f"{B}:8+1,9+1": (3.0, 3.2, 2.8), f"{B}:8+1": (-3.0, -3.2, -2.8), f"{B}:8=1,9+1": (0.5, -0.5, 0.0)}
CONFIG = """backbone: mobilenet_v1
width: 0.25
dataset: {name: digits, train_limit: 128}
training: {epochs: 2, batch_size: 64, warmup_epochs: 0.5}
space: {blocks: [8, 9], groups: [1]}
sampler: {name: grid, seed: 1}
n_trials: 9
max_concurrent: 2
backend: {name: table, table: table.csv}
confirm: {top: 3, seeds: 3, select: front}
"""


def _write_table(path: Path) -> None:
    rows = []
    for arch, top1 in SEARCH_TOP1.items():
        for seed in range(4):
            final = top1 if seed == 0 else BASE[seed] + (PLANTED[arch][seed - 1] if arch in PLANTED else 0.0)
            rows += [{"arch": arch, "seed": seed, "epoch": epoch, "top1": final - (2 - epoch), "top5": final + 5,
                      "val_loss": 1.0, "train_seconds": 1.0, "macs": 1, "params": 1, "latency_ms": 1.0}
                     for epoch in (1, 2)]
    pd.DataFrame(rows, columns=TABLE_COLUMNS).to_csv(path, index=False)


@pytest.mark.slow
def test_confirm_finds_the_planted_better_worse_and_equal_members(tmp_path):
    _write_table(tmp_path / "table.csv")
    (tmp_path / "ct.yaml").write_text(CONFIG)
    result = subprocess.run([EXE, "run", "ct.yaml", "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-5] == "confirmed at 2 epochs with seeds 1, 2, 3:"
    # diffs 3 +- 0.2 over 3 seeds: t = 3 / (0.2 / sqrt 3), p = 1 - t / sqrt(t^2 + 2) (2 dof); Holm: 3p for the
    # smaller, max(3p, 2p) for the next; the CI half-width is t_.975,2 * 0.2 / sqrt 3
    t = 3 / (0.2 / math.sqrt(3))
    p_holm = 3 * (1 - t / math.sqrt(t * t + 2))
    half = 4.302652729911275 * 0.2 / math.sqrt(3)
    assert lines[-4] == (f"  `{B}:8+1,9+1` beats the baseline's top-1: Δ +3.00 ± {half:.2f} (p {p_holm:.3g}, "
                         f"Holm)")
    assert lines[-3] == f"  `{B}:8+1` is worse than the baseline: Δ top-1 -3.00 ± {half:.2f} (p {p_holm:.3g}, Holm)"
    assert lines[-2].startswith(f"  `{B}:8=1,9+1` saves 9% MACs at Δ top-1 +0.00 ± ")
    assert lines[-2].endswith("(not distinguishable)")
    assert lines[-1].startswith("  seed std ") and "points are not findings" in lines[-1]

    run = tmp_path / "runs" / "ct"
    rows = pd.read_csv(run / "confirm.csv")
    assert len(rows) == 12 and sorted(set(rows["seed"])) == [1, 2, 3] and (rows["epochs"] == 2).all()
    assert sorted(set(rows["arch"])) == sorted([B, *PLANTED])
    base = rows[rows["role"] == "baseline"]
    assert base["arch"].unique().tolist() == [B] and base["top1"].tolist() == [90.0, 91.0, 92.0]
    assert rows.set_index("arch").loc[f"{B}:8+1,9+1", "search_top1"].tolist() == [65.0] * 3  # the single run

    summary = json.loads((tmp_path / "reports" / "ct" / "summary.json").read_text())
    verdicts = {m["arch"]: m["verdict"] for m in summary["confirmed"]["members"]}
    assert verdicts == {f"{B}:8+1,9+1": "better", f"{B}:8+1": "worse", f"{B}:8=1,9+1": "not distinguishable"}
    assert summary["confirmed"]["seeds"] == [1, 2, 3] and summary["confirmed"]["baseline"]["top1_mean"] == 91.0
    markdown = (tmp_path / "reports" / "ct" / "pareto.md").read_text()
    assert "## Confirmed" in markdown and "single runs" not in markdown
    assert (tmp_path / "reports" / "ct" / "confirmed_top1_vs_macs.png").stat().st_size > 10_000
    assert "<h2>Confirmed</h2>" in (tmp_path / "reports" / "ct" / "index.html").read_text()

    # Asked again: nothing is retrained; other settings are refused before anything is written.
    trained = pd.read_csv(run / "confirm" / "trials.csv")
    again = subprocess.run([EXE, "confirm", "runs/ct", "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert pd.read_csv(run / "confirm" / "trials.csv").equals(trained) and again.stdout.endswith(result.stdout[
        result.stdout.index("confirmed at"):])
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    changed = subprocess.run([EXE, "confirm", "runs/ct", "--seeds", "4"], cwd=tmp_path, capture_output=True,
                             text=True)
    assert changed.returncode == 2 and changed.stderr.startswith("error: the confirm stage of ")
    assert "was started with 3 members" in changed.stderr and len(changed.stderr.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before

    # A stage started with other settings than the config's (--top 1) and then continued as it is: no note.
    shutil.rmtree(run / "confirm")
    (run / "confirm.csv").unlink()
    confirm = [EXE, "confirm", "runs/ct", "--quiet"]
    started = subprocess.run([*confirm, "--top", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr[-3000:]
    plain = subprocess.run(confirm, cwd=tmp_path, capture_output=True, text=True)
    assert plain.returncode == 0 and "note:" not in plain.stderr, plain.stderr[-3000:]
    # Its member leaves the search's front (dominated by the baseline now): the stage goes on and names it.
    trained = pd.read_csv(run / "confirm" / "trials.csv")
    assert set(trained["arch"]) == {B, f"{B}:8+1,9+1"}  # the most accurate member and the baseline
    trials = pd.read_csv(run / "trials.csv")
    trials.loc[trials["arch"] == f"{B}:8+1,9+1", "top1"] = 0.0
    trials.to_csv(run / "trials.csv", index=False)
    moved = subprocess.run(confirm, cwd=tmp_path, capture_output=True, text=True)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert f"note: {B}:8+1,9+1 left the search's front since the confirm stage started" in moved.stderr
    assert pd.read_csv(run / "confirm" / "trials.csv").equals(trained)  # nothing retrained


@pytest.mark.slow
def test_a_confirm_killed_midway_resumes_every_arch_and_seed_exactly_once(tmp_path):
    """Real training: a tiny search, then its confirm stage (2 ARCHs x 3 seeds, one at a time) killed after two
    trials and resumed with `ulsam-search resume`."""
    (tmp_path / "t.yaml").write_text(
        "backbone: mobilenet_v1\nwidth: 0.25\ndataset: {name: digits, train_limit: 128}\n"
        "training: {epochs: 2, batch_size: 64, warmup_epochs: 0.5}\n"
        "space: {blocks: [7], groups: [1], ops: [none, replace]}\nsampler: {name: grid, seed: 0}\nn_trials: 2\n"
        "max_concurrent: 1\n")
    searched = subprocess.run([EXE, "run", "t.yaml", "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert searched.returncode == 0, searched.stderr[-3000:]
    driver = subprocess.Popen([EXE, "confirm", "runs/t", "--top", "1", "--seeds", "3", "--quiet"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    trials = tmp_path / "runs" / "t" / "confirm" / "trials.csv"
    deadline = time.time() + STUCK_RUN_S
    while time.time() < deadline and (not trials.exists() or len(pd.read_csv(trials)) < 2):
        assert driver.poll() is None, driver.stderr.read().decode()
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = pd.read_csv(trials)
    assert 2 <= len(before) < 6 and not (tmp_path / "runs" / "t" / "confirm.csv").exists()
    resumed = subprocess.run([EXE, "resume", "runs/t", "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = pd.read_csv(trials)
    assert len(after) == 6 and (after["status"] == "COMPLETE").all() and after["duplicate_of"].isna().all()
    assert sorted(zip(after["arch"], after["seed"])) == sorted(
        (arch, seed) for arch in (B, f"{B}:7=1") for seed in (1, 2, 3))
    kept = after.set_index("number").loc[before["number"], ["trial_id", "top1"]]
    assert kept.reset_index(drop=True).equals(before[["trial_id", "top1"]])  # finished ones never retrained
    rows = pd.read_csv(tmp_path / "runs" / "t" / "confirm.csv")
    assert len(rows) == 6 and set(rows["role"]) == {"baseline", "member"}
    assert "confirmed at 2 epochs with seeds 1, 2, 3:" in resumed.stdout
