"""Ablation studies: cells from configs, statistics against a hand computation, a real study with resume."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from faults import STUCK_RUN_S
from ulsam_search.ablation import PAPER_RESULTS, ablation_config, build_cell_space, cell_statistics, study_cells
from ulsam_search.ablation.claims import claims_frame, interval, paper_claims, study_claims
from ulsam_search.ablation.stats import compare_with_baseline, holm, verdict
from ulsam_search.config import SearchConfig, load_search_config
from ulsam_search.errors import InvalidInput
from ulsam_search.report import write_report
from ulsam_search.search.records import COLUMNS

ROOT = Path(__file__).resolve().parent.parent


def study(kind, backbone="mobilenet_v2", width=1.0, **fields) -> SearchConfig:
    return SearchConfig(name="ab", backbone=backbone, width=width, study={"kind": kind, **fields})


def test_placement_rows_are_every_allowed_block_at_one_g():
    baseline, cells = study_cells(study("placement", ops=["replace"], groups=[4]))
    assert baseline == "mobilenet_v2"
    assert [c.arch for c in cells] == [f"mobilenet_v2:{b}=4" for b in (3, 5, 6, 8, 9, 10, 12, 13, 15, 16)]
    _, cells = study_cells(study("placement", blocks=[2, 3], groups=[8]))
    assert [(c.row, c.arch) for c in cells] == [("block 2 insert", "mobilenet_v2:2+8"),
                                                ("block 3 insert", "mobilenet_v2:3+8"),
                                                ("block 3 replace", "mobilenet_v2:3=8")]


def test_grid_and_subspaces_cells_skip_g_that_do_not_divide():
    _, cells = study_cells(study("grid", blocks=[1], ops=["insert"], groups=[1, 3, 16, 32]))
    assert [c.groups for c in cells] == [1, 16]  # block 1 has 16 channels: 3 and 32 leave the cell empty
    config = study("subspaces", width=0.35, archs=["paper-mv2-c", "mobilenet_v2:16+2"], groups=[1, 4, 8])
    _, cells = study_cells(config)
    assert [(c.row, c.arch) for c in cells] == [
        ("paper-mv2-c", "mobilenet_v2@0.35:12=1,15=1"), ("paper-mv2-c", "mobilenet_v2@0.35:12=4,15=4"),
        ("paper-mv2-c", "mobilenet_v2@0.35:12=8,15=8"), ("16+g", "mobilenet_v2@0.35:16+1"),
        ("16+g", "mobilenet_v2@0.35:16+4"), ("16+g", "mobilenet_v2@0.35:16+8")]
    space = build_cell_space(config.model_copy(update={"study": config.study.model_copy(update={"seeds": (7, 9)})}))
    assert space.size == 7 * 2 and space.archs[0] == "mobilenet_v2@0.35" and space.blocks == (12, 15, 16)
    runner = ablation_config(config)
    assert (runner.n_trials, runner.sampler.name, runner.scheduler.name) == (21, "grid", "fifo")


@pytest.mark.parametrize("fields, message", [
    ({"kind": "placement", "groups": [1, 4]}, "study: a placement study uses one g"),
    ({"kind": "subspaces"}, "study: a subspaces study needs archs"),
    ({"kind": "grid", "archs": ["paper-mv2-c"]}, "archs belongs to a subspaces or archs study, not grid"),
    ({"kind": "grid", "seeds": [1, 1]}, "seeds must be a count or a list of distinct seeds"),
    ({"kind": "sweep"}, "study.kind: Input should be 'placement', 'subspaces', 'grid' or 'archs'"),
])
def test_study_config_errors_name_the_field(tmp_path, fields, message):
    path = tmp_path / "ab.yaml"
    path.write_text(json.dumps({"study": fields}))
    with pytest.raises(InvalidInput, match=message):
        load_search_config(path)


@pytest.mark.parametrize("fields, message", [
    ({"kind": "subspaces", "archs": ["paper-mv2-z"]}, "study.archs.0: unknown variant 'paper-mv2-z'"),
    ({"kind": "subspaces", "archs": ["mobilenet_v1:11=4"]}, "study.archs.0: mobilenet_v1:11=4 must place ULSAM on "
                                                            "mobilenet_v2"),
    ({"kind": "grid", "blocks": [40]}, "study.blocks: block 40 out of range for mobilenet_v2; valid blocks: 1..17"),
    ({"kind": "grid", "blocks": [2], "ops": ["replace"]}, "study.blocks: block 2 cannot be replaced"),
    ({"kind": "grid", "blocks": [1], "ops": ["insert"], "groups": [3, 5]}, "study.groups: none of 3, 5 fits "
                                                                             "block 1 insert"),
])
def test_cells_errors_name_the_field(fields, message):
    with pytest.raises(InvalidInput, match=message):
        study_cells(study(**fields))


def _row(number, arch, seed, top1, top5):
    return {**{c: None for c in COLUMNS}, "number": number, "arch": arch, "seed": seed, "top1": top1, "top5": top5,
            "status": "COMPLETE", "macs": 100, "params": 10}


def test_statistics_match_a_hand_computation():
    config = study("subspaces", archs=["paper-mv2-c"], groups=[4, 8], seeds=3, paper_reference="imagenet")
    base = [71.0, 72.0, 73.0]
    cell = [71.5, 72.0, 74.5]  # paired differences 0.5, 0.0, 1.5
    rows = [_row(i, "mobilenet_v2", s, t, 90.0) for i, (s, t) in enumerate(zip((0, 1, 2), base))]
    rows += [_row(3 + i, "mobilenet_v2:12=4,15=4", s, t, 90.0 + s) for i, (s, t) in enumerate(zip((0, 1, 2), cell))]
    rows += [_row(6, "mobilenet_v2:12=8,15=8", 0, 70.0, 89.0)]  # one seed so far
    stats = cell_statistics(config, pd.DataFrame(rows)).set_index("arch")

    t_975_df2 = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom
    b = stats.loc["mobilenet_v2"]
    assert (b["n"], b["top1_mean"], b["top1_std"]) == (3, 72.0, 1.0)
    assert b["top1_ci_low"] == pytest.approx(72.0 - t_975_df2 / math.sqrt(3))
    assert (b["paper_top1"], b["paper_top5"]) == (71.25, 90.19)

    c = stats.loc["mobilenet_v2:12=4,15=4"]
    mean_d, sd_d = 2.0 / 3, math.sqrt(((0.5 - 2 / 3) ** 2 + (2 / 3) ** 2 + (1.5 - 2 / 3) ** 2) / 2)
    t = mean_d / (sd_d / math.sqrt(3))
    assert c["d_top1"] == pytest.approx(mean_d) and c["paired_seeds"] == 3
    assert c["d_top1_ci_high"] == pytest.approx(mean_d + t_975_df2 * sd_d / math.sqrt(3))
    assert c["d_top1_p"] == pytest.approx(1 - abs(t) / math.sqrt(t * t + 2))  # two-sided, df = 2, closed form
    assert c["d_top5"] == pytest.approx(1.0) and c["paper_top1"] == 71.52

    one = stats.loc["mobilenet_v2:12=8,15=8"]
    assert one["n"] == 1 and one["top1_mean"] == 70.0 and math.isnan(one["top1_std"]) and math.isnan(one["d_top1_p"])
    assert one["d_top1"] == pytest.approx(-1.0)  # the one seed both have: 70 - 71
    assert set(PAPER_RESULTS) >= {("birds", "mobilenet_v2:9=16,12=16"), ("dogs", "mobilenet_v1:11=8")}
    # Holm across the two cells with a p-value: only one is tested (the other has one seed), so it is its own p.
    assert c["d_top1_p_holm"] == pytest.approx(c["d_top1_p"]) and c["verdict"] == "not distinguishable"
    assert math.isnan(one["d_top1_p_holm"]) and one["verdict"] == "not distinguishable"


def test_holm_and_the_verdicts_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # 3 x 0.01, max(3 x 0.01, 2 x 0.03), ...
    assert holm([0.5, 0.4]) == pytest.approx([0.8, 0.8]) and holm([0.9, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.02, math.nan])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])  # an untested comparison does not count
    assert [verdict(1.0, 0.01), verdict(-1.0, 0.049), verdict(2.0, 0.05), verdict(2.0, math.nan)] == [
        "better", "worse", "not distinguishable", "not distinguishable"]


def test_planted_better_worse_and_equal_archs_against_the_baseline():
    base = [90.0, 91.0, 92.0]
    planted = {"better": [3.0, 3.2, 2.8], "worse": [-2.0, -2.2, -1.8], "equal": [0.5, -0.5, 0.0]}
    rows = [{"arch": "base", "seed": s, "top1": v, "top5": 99.0} for s, v in zip((1, 2, 3), base)]
    rows += [{"arch": name, "seed": s, "top1": b + d, "top5": 99.0} for name, diffs in planted.items()
             for s, b, d in zip((1, 2, 3), base, diffs)]
    frame = compare_with_baseline(pd.DataFrame(rows), "base", list(planted)).set_index("arch")
    assert frame.index.tolist() == ["base", "better", "worse", "equal"]
    # diffs 3 and -2, each +- 0.2 (sample std): t = d / (0.2 / sqrt 3); two-sided p, 2 degrees of freedom, closed form
    p_better, p_worse = (1 - t / math.sqrt(t * t + 2) for t in (3.0 / (0.2 / math.sqrt(3)), 2.0 / (0.2 / math.sqrt(3))))
    assert frame.loc["better", "d_top1_p"] == pytest.approx(p_better)
    assert frame.loc["worse", "d_top1_p"] == pytest.approx(p_worse) and frame.loc["equal", "d_top1_p"] == pytest.approx(1)
    # Holm: the smallest p times 3, the next times 2 (and at least the one before), the last times 1
    assert frame["d_top1_p_holm"].tolist()[1:] == pytest.approx([3 * p_better, max(3 * p_better, 2 * p_worse), 1.0])
    assert frame["verdict"].tolist()[1:] == ["better", "worse", "not distinguishable"]
    assert math.isnan(frame.loc["base", "d_top1_p_holm"]) and frame.loc["better", "d_top1"] == pytest.approx(3.0)


def test_the_papers_claims_by_hand():
    # seeds 0-2. 12=4 - 12=1: 1.0, 1.5, 1.0 (mean 1.1667, sd 0.2887); replacements - base: 12=1 -0.5, 0, -0.5 and
    # 12=4 +0.5, +1.5, +0.5, pooled per seed 0, 0.75, 0 (mean 0.25, sd 0.4330). t(0.975, 2) = 4.302653.
    # 16+4 has no g = 1 partner and is no replacement: in neither claim.
    top1 = {"b": [90.0, 91.0, 92.0], "b:12=1": [89.5, 91.0, 91.5], "b:12=4": [90.5, 92.5, 92.5],
            "b:16+4": [95.0, 95.0, 95.0]}
    rename = {k: k.replace("b", "mobilenet_v2@0.35", 1) for k in top1}
    done = pd.DataFrame([{"arch": rename[a], "seed": s, "top1": v} for a, vs in top1.items() for s, v in enumerate(vs)])
    claims = {c.name: c for c in paper_claims(done, rename["b"], [rename[a] for a in top1 if a != "b"])}
    t = 4.302653
    sub, rep = claims["subspaces"], claims["replace"]
    assert sub.comparisons[["arch", "reference"]].values.tolist() == [[rename["b:12=4"], rename["b:12=1"]]]
    assert (sub.d_top1, sub.ci_low, sub.ci_high) == pytest.approx(
        (7 / 6, 7 / 6 - t * 0.288675 / math.sqrt(3), 7 / 6 + t * 0.288675 / math.sqrt(3)), abs=1e-5)
    assert sub.verdict == "reproduced" and sub.seeds == 3
    assert sorted(rep.comparisons["arch"]) == [rename["b:12=1"], rename["b:12=4"]]
    assert (rep.d_top1, rep.ci_low) == pytest.approx((0.25, 0.25 - t * 0.433013 / math.sqrt(3)), abs=1e-5)
    assert rep.verdict == "reproduced"  # CI low -0.83 > -1 point
    single = rep.comparisons.set_index("arch")["verdict"]
    assert single[rename["b:12=1"]] == "inconclusive"  # [-1.05, +0.38]: neither within the margin nor below 0
    assert "g > 1 beats g = 1 (same placements): reproduced; Δ top-1 +1.17 [+0.45, +1.88] points over 1 " \
        "comparison(s) x 3 seed(s)" == sub.sentence()
    frame = claims_frame([sub, rep])
    assert frame["arch"].tolist()[-1] == "pooled" and frame["verdict"].tolist() == [
        "reproduced", "reproduced", "inconclusive", "reproduced", "reproduced"]


@pytest.mark.parametrize("config, trials, quoted", [
    ("search_spaces/ablation_quick.yaml", "ablation_quick_trials.csv", "sentence"),
    ("benchmarks/signal/cluttered_a.yaml", "signal_cluttered_a_trials.csv", "sentence"),
    ("benchmarks/signal/cluttered_b.yaml", "signal_cluttered_b_trials.csv", "interval"),  # B is quoted in prose
])
def test_the_readmes_claims_come_from_the_committed_trials(config, trials, quoted):
    table = pd.read_csv(ROOT / "benchmarks" / "data" / trials)
    claims = study_claims(load_search_config(ROOT / config), table)
    assert [c.name for c in claims] == ["subspaces", "replace"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    for claim in claims:
        text = claim.sentence() if quoted == "sentence" else interval(claim.d_top1, claim.ci_low, claim.ci_high)
        assert text in readme, text


def test_claims_a_study_cannot_test_are_left_out():
    done = pd.DataFrame([{"arch": a, "seed": s, "top1": 90.0 + s} for a in ("mobilenet_v2", "mobilenet_v2:16+4")
                         for s in (0, 1)])
    assert paper_claims(done, "mobilenet_v2", ["mobilenet_v2:16+4"]) == []
    worse = pd.DataFrame([{"arch": "mobilenet_v2", "seed": s, "top1": 90.0 + s} for s in (0, 1, 2)] +
                         [{"arch": "mobilenet_v2:16=4", "seed": s, "top1": 85.0 + s + d} for s, d in
                          enumerate((0.0, 0.1, -0.1))])
    (claim,) = paper_claims(worse, "mobilenet_v2", ["mobilenet_v2:16=4"])
    assert claim.name == "replace" and claim.verdict == "contradicted" and claim.d_top1 == pytest.approx(-5.0)
    # A loss of 1.0 [-1.25, -0.75]: below 0, yet a loss under the 1-point margin is not ruled out: inconclusive.
    near = worse.assign(top1=worse["top1"] + np.where(worse["arch"] == "mobilenet_v2", 0.0, 4.0))
    (claim,) = paper_claims(near, "mobilenet_v2", ["mobilenet_v2:16=4"])
    assert claim.d_top1 == pytest.approx(-1.0) and claim.ci_high < 0 and claim.verdict == "inconclusive"
    apart = pd.DataFrame([{"arch": a, "seed": s, "top1": 90.0} for a, seeds in
                          (("mobilenet_v2", (0, 1)), ("mobilenet_v2:16=4", (2, 3))) for s in seeds])
    assert paper_claims(apart, "mobilenet_v2", ["mobilenet_v2:16=4"]) == []  # no seed both finished


def _exe() -> str:
    return str(Path(sys.executable).parent / "ulsam-search")


@pytest.mark.slow
def test_a_real_ablation_on_digits_resumes_and_reports(tmp_path):
    """2 placements x 2 g x 2 seeds + the baseline: 10 trials; the driver is killed mid-study and resumed."""
    config = tmp_path / "ab.yaml"
    config.write_text(
        "backbone: mobilenet_v1\nwidth: 0.25\ndataset: {name: digits, train_limit: 256}\n"
        "training: {epochs: 2, batch_size: 32, warmup_epochs: 0.5}\n"
        "study: {kind: grid, blocks: [7, 9], ops: [replace], groups: [1, 2], seeds: 2}\nmax_concurrent: 2\n")
    args = ["--runs-dir", str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "reports")]
    driver = subprocess.Popen([_exe(), "ablate", str(config), "--quiet", *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    trials = tmp_path / "runs" / "ab" / "trials.csv"
    deadline = time.time() + STUCK_RUN_S
    while time.time() < deadline and (not trials.exists() or len(pd.read_csv(trials)) < 3):
        assert driver.poll() is None, driver.stderr.read().decode()
        time.sleep(0.5)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = pd.read_csv(trials)
    assert 3 <= len(before) < 10
    partial = write_report(tmp_path / "runs" / "ab", tmp_path / "partial")  # claims on the cells finished so far
    assert ("**Incomplete**: the run has not finished its 10 trials (it stopped, or is still running), so a cell's "
            "seeds, the claims and the front cover only the trials finished so far") in \
        (partial / "ablation.md").read_text()
    resumed = subprocess.run([_exe(), "resume", str(tmp_path / "runs" / "ab"), "--quiet",
                              "--reports-dir", str(tmp_path / "reports")], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    table = pd.read_csv(trials)
    assert len(table) == 10 and (table["status"] == "COMPLETE").all() and table["duplicate_of"].isna().all()
    assert sorted(zip(table["arch"], table["seed"])) == sorted(
        (f"mobilenet_v1@0.25{cell}", seed) for cell in ("", ":7=1", ":7=2", ":9=1", ":9=2") for seed in (0, 1))
    kept = table.set_index("number").loc[before["number"], ["trial_id", "top1"]]
    assert kept.reset_index(drop=True).equals(before[["trial_id", "top1"]])  # finished cells never re-run

    report = tmp_path / "reports" / "ab"
    stats = pd.read_csv(report / "ablation.csv")
    assert stats["n"].tolist() == [2] * 5 and stats["row"].tolist()[0] == "baseline"
    assert stats["paired_seeds"].dropna().tolist() == [2] * 4
    markdown = (report / "ablation.md").read_text()
    assert "| block 7 replace |" in markdown and "| g=1 | g=2 |" in markdown and "Incomplete" not in markdown
    for png in ("ablation_top1_vs_g.png", "ablation_delta_top1.png"):
        assert (report / png).stat().st_size > 10_000
    assert 'id="plot-ablation_delta_top1"' in (report / "index.html").read_text()

    # The paper's claims, recomputed here from trials.csv: per seed the mean difference over the claim's pairs
    from scipy import stats as scipy_stats

    wide, base = table.pivot(index="seed", columns="arch", values="top1"), "mobilenet_v1@0.25"
    claims = pd.read_csv(report / "claims.csv").set_index(["claim", "arch"])
    for claim, pairs in {"subspaces": [(":7=2", ":7=1"), (":9=2", ":9=1")],
                         "replace": [(":7=1", ""), (":7=2", ""), (":9=1", ""), (":9=2", "")]}.items():
        per_seed = sum(wide[base + a] - wide[base + r] for a, r in pairs) / len(pairs)
        half = scipy_stats.t.ppf(0.975, 1) * per_seed.std(ddof=1) / math.sqrt(2)
        pooled = claims.loc[(claim, "pooled")]
        assert (pooled["d_top1"], pooled["ci_low"], pooled["ci_high"]) == pytest.approx(
            (per_seed.mean(), per_seed.mean() - half, per_seed.mean() + half))
        assert len(claims.loc[claim]) == len(pairs) + 1
    assert resumed.stdout.count("paper claim: ") == 2 and "## The paper's claims" in markdown


def test_ablate_and_run_refuse_each_others_configs(tmp_path):
    search = tmp_path / "search.yaml"
    search.write_text("space: {blocks: [12]}\n")
    result = subprocess.run([_exe(), "ablate", str(search), "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "study: missing; an ablation names its study" in result.stderr
    ablation = ROOT / "search_spaces" / "ablation_quick.yaml"
    result = subprocess.run([_exe(), "run", str(ablation), "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "study: this is an ablation; run it with `ulsam-search ablate" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "search_spaces").glob("ablation_*.yaml")))
def test_shipped_studies_build_their_cells(name):
    config = ablation_config(load_search_config(ROOT / "search_spaces" / name))
    assert config.n_trials == build_cell_space(config).size >= 15
