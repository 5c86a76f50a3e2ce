"""`ulsam-search bench NAME --quick` through the real CLI: every row is there and every figure is a finite number
of the right sign, read back from the printed table."""

import math
import re
from pathlib import Path

import pytest

from ulsam_search.cli import main

ROOT = Path(__file__).resolve().parent.parent
RATIO = re.compile(r"^(?P<median>[\d.]+)x \((?P<q1>[\d.]+)-(?P<q3>[\d.]+)\)$")


def bench(capsys, *argv) -> tuple[list[list[str]], str]:
    """The body rows of the printed table (cells stripped) and the whole output; exit 0 asserted."""
    code = main(["bench", *argv])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [[cell.strip() for cell in line.strip().strip("│").split("│")]
            for line in out.splitlines() if line.startswith("│")]
    return rows, out


def positive(cell: str) -> float:
    value = float(cell.removesuffix("x").replace(",", ""))
    assert math.isfinite(value) and value > 0, cell
    return value


def test_bench_ulsam_times_four_contenders_with_paired_ratios(capsys):
    rows, out = bench(capsys, "ulsam", "--quick", "--repeats", "3", "--batch", "4", "--device", "cpu")
    assert [row[:4] for row in rows] == [["cpu", "16", "14", "4"], ["cpu", "32", "7", "8"]]
    for row in rows:
        assert all(positive(cell) for cell in row[4:8] + row[10:12])  # four medians (ms), saved MB
        for cell in row[8:10]:  # fused vs the loop at its best layout, fused vs composite
            ratio = RATIO.match(cell)
            assert ratio, cell
            q1, median, q3 = (positive(ratio[k]) for k in ("q1", "median", "q3"))
            assert q1 <= median <= q3
    assert re.search(r"goal fused >= 2x the loop at its best layout on CPU: met at [0-2] of 2 shapes", out)


@pytest.mark.slow
def test_bench_train_quick(capsys):
    rows, out = bench(capsys, "train", "--quick", "--repeats", "1", "--device", "cpu")
    assert len(rows) == 2 and all(row[3] == "cpu fp32" for row in rows)
    assert "fake 64px (synthetic)" in [row[1] for row in rows]
    for row in rows:
        bare_nchw, bare, ours = (positive(cell) for cell in row[4:7])
        # the ratios agree with the printed rates up to their rounding (rates to 0.1, ratios to 0.001 and 0.01)
        assert abs(positive(row[7]) - ours / bare) <= 0.05 / bare + 0.05 * ours / bare**2 + 0.0005
        assert abs(positive(row[8]) - bare / bare_nchw) <= 0.05 / bare_nchw + 0.05 * bare / bare_nchw**2 + 0.005


@pytest.mark.slow
def test_bench_search_quick_interleaves_repeats(capsys):
    rows, out = bench(capsys, "search", "--quick")
    assert [row[0] for row in rows] == ["0 (runner1 direct runner2 pair)", "1 (direct runner2 pair runner1)",
                                        "median (min-max)"]
    for row in rows[:2]:
        direct, runner1, runner2, start1, start2 = (positive(cell) for cell in row[1:6])
        overhead, with_start = float(row[6]), float(row[7])
        assert math.isfinite(overhead) and abs(with_start - (runner1 - direct) / 4) < 0.008
        assert start1 < runner1 and start2 < runner2
        assert abs(positive(row[8]) - (runner1 - start1) / (runner2 - start2)) < 0.02
        assert all(positive(cell) for cell in row[9:11])
    assert all(re.match(r"^-?[\d.]+x? \(-?[\d.]+-?-[\d.]+\)$", cell) for cell in rows[2][1:]), rows[2]
    assert re.search(r"overhead <= 0.5 s/trial \(steady\): (met|not met|within noise .*); 1 -> 2 concurrent >= 1.8x: "
                     r"(met|not met|within noise .*) \(this machine's own ceiling: [\d.]+x", out)


@pytest.mark.slow
def test_bench_report_quick(capsys):
    rows, _ = bench(capsys, "report", "--quick")
    assert len(rows) == 1 and rows[0][0] == "200"
    assert int(rows[0][1]) >= 1 and positive(rows[0][2]) and positive(rows[0][3])


TABLE_HEADER = "arch,seed,epoch,top1,top5,val_loss,train_seconds,macs,params,latency_ms"
COSTS = ",0.5,30,15611136,394858,3.4"  # val_loss to latency_ms: the same for every row, unread here


def test_bench_seed_noise_matches_a_hand_computation(capsys, tmp_path):
    # Three architectures x three seeds; each architecture's seed std is 1, its means 91, 94 and 87.
    # Between-architecture variance of the means: (0.111 + 11.111 + 13.444) / 2 = 12.333 (std 3.51); beyond the
    # seed noise: sqrt(12.333 - 1/3) = sqrt(12) = 3.46. Every seed ranks the three alike: Spearman 1 for each pair.
    top1 = {"mobilenet_v2@0.35": [90, 91, 92], "mobilenet_v2@0.35:16+4": [93, 94, 95],
            "mobilenet_v2@0.35:6+4": [86, 88, 87]}
    rows = ["number,arch,seed,top1,top5,status"] + [f"{i},{arch},{seed},{v},99,COMPLETE" for i, (arch, seed, v) in
                                                    enumerate((a, s, v) for a, vs in top1.items()
                                                              for s, v in enumerate(vs))]
    (tmp_path / "study_trials.csv").write_text("\n".join(rows) + "\n")
    _, out = bench(capsys, "seed-noise", str(tmp_path / "study_trials.csv"))
    assert ("study: 3 architectures x 3 seeds; seed std 1.00 points, between-architecture std 3.51 (beyond noise "
            "3.46); seed-to-seed Spearman +1.00, +1.00, +1.00 (mean, 95% CI: +1.00 [no CI]); goal r >= 0.6: "
            "unclear (too few architectures for a CI)") in " ".join(out.split())
    assert "mobilenet_v2@0.35 (baseline)" in out and "+3.00 [+3.00, +3.00]" in out


def _ranked_study(path: Path, seed1: list[float]) -> Path:
    """A study of len(seed1) architectures x 2 seeds: seed 0 gives architecture i top-1 80 + i, seed 1 seed1[i]."""
    archs = ["mobilenet_v2@0.35"] + [f"mobilenet_v2@0.35:{block}+4" for block in range(1, len(seed1))]
    rows = ["number,arch,seed,top1,top5,status"] + [
        f"{2 * i + seed},{arch},{seed},{top1},99,COMPLETE" for i, arch in enumerate(archs)
        for seed, top1 in ((0, 80 + i), (1, seed1[i]))]
    path.write_text("\n".join(rows) + "\n")
    return path


def _swapped(pairs) -> list[float]:
    ranks = list(range(80, 100))
    for a, b in pairs:
        ranks[a], ranks[b] = ranks[b], ranks[a]
    return ranks


@pytest.mark.parametrize("seed1, verdict", [
    # Seed 1 swaps four disjoint pairs five ranks apart ({0, 5}, ..., {3, 8}): the sum of squared rank differences is
    # 8 * 25 = 200, Spearman 1 - 6 * 200 / (20 * 399) = 0.8496. Fisher's z 1.2548 -+ 1.96 sqrt((1 + 0.8496^2 / 2) /
    # 17) = 1.2548 -+ 0.5546: the CI is tanh of that, [0.6045, 0.9478], all above 0.6.
    (_swapped([(0, 5), (1, 6), (2, 7), (3, 8)]), "+0.85 (mean, 95% CI: +0.85 [+0.60, +0.95]); goal r >= 0.6: met"),
    # Eight such swaps: 1 - 6 * 400 / 7980 = 0.6992, z 0.8652 -+ 1.96 sqrt((1 + 0.6992^2 / 2) / 17) = 0.8652 -+ 0.5303,
    # CI [0.3235, 0.8845]: it spans 0.6.
    (_swapped([(0, 5), (1, 6), (2, 7), (3, 8), (10, 15), (11, 16), (12, 17), (13, 18)]),
     "+0.70 (mean, 95% CI: +0.70 [+0.32, +0.88]); goal r >= 0.6: unclear (the CI spans it)"),
    # Seed 1 reversed: Spearman -1, where Fisher's z has no finite error.
    (list(range(99, 79, -1)), "-1.00 (mean, 95% CI: -1.00 [no CI]); goal r >= 0.6: unclear (no CI: r = ±1, or a "
                              "seed on which every architecture ties)"),
], ids=["met", "ci-spans-the-goal", "no-ci"])
def test_bench_seed_noise_calls_the_goal_met_only_when_the_whole_ci_clears_it(capsys, tmp_path, seed1, verdict):
    _, out = bench(capsys, "seed-noise", str(_ranked_study(tmp_path / "ranked_trials.csv", seed1)))
    assert f"seed-to-seed Spearman {verdict}" in " ".join(out.split())


def test_bench_seed_noise_refuses_a_study_without_a_complete_trial(capsys, tmp_path):
    study = _ranked_study(tmp_path / "failed_trials.csv", list(range(80, 100)))
    study.write_text(study.read_text().replace("COMPLETE", "FAILED"))
    assert main(["bench", "seed-noise", str(study)]) == 2
    assert capsys.readouterr().err == f"error: {study}: no COMPLETE trial, so nothing to compare\n"


def test_bench_seed_noise_refuses_a_file_that_is_not_a_table(capsys, tmp_path):
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n1,2,3\n")
    assert main(["bench", "seed-noise", str(tmp_path / "notes.csv")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'notes.csv'}: not a trials table or a tabular benchmark (Error tokenizing "
                   "data. C error: Expected 2 fields in line 3, saw 3)\n")


def test_bench_seed_noise_reads_the_final_epoch_of_a_tabular_benchmark(capsys, tmp_path):
    # Three architectures x two seeds x two epochs; only epoch 2 counts. Seed 0 ranks a < b < c (90, 92, 94), seed 1
    # b < a < c (93, 91, 95): Spearman 1 - 6 * 2 / (3 * 8) = 0.5. Seed variances 4.5, 0.5 and 0.5, pooled 1.83: std
    # 1.35; means 91.5, 91.5 and 94.5: variance 3 (std 1.73), beyond noise sqrt(3 - 1.83 / 2) = 1.44. Epoch 1 ties.
    rows = [TABLE_HEADER]
    final = {("mobilenet_v2@0.35", 0): 90, ("mobilenet_v2@0.35", 1): 93, ("mobilenet_v2@0.35:16+4", 0): 92,
             ("mobilenet_v2@0.35:16+4", 1): 91, ("mobilenet_v2@0.35:6+4", 0): 94, ("mobilenet_v2@0.35:6+4", 1): 95}
    for (arch, seed), top1 in final.items():
        rows += [f"{arch},{seed},1,50,90{COSTS}", f"{arch},{seed},2,{top1},99{COSTS}"]
    (tmp_path / "tabular_x.csv").write_text("\n".join(rows) + "\n")
    _, out = bench(capsys, "seed-noise", str(tmp_path / "tabular_x.csv"))
    out = " ".join(out.split())
    assert ("tabular_x: 3 architectures x 2 seeds; seed std 1.35 points, between-architecture std 1.73 (beyond noise "
            "1.44); seed-to-seed Spearman +0.50 (mean, 95% CI: +0.50 [no CI])") in out
    assert "seed 0 (3 architectures): epoch 1 n/a; seed 1 (3 architectures): epoch 1 n/a" in out


def test_bench_seed_noise_ranks_a_tables_earlier_epochs_against_its_final_one(capsys, tmp_path):
    # One seed, three architectures, three epochs: epoch 1 ranks them as epoch 3 does (Spearman +1), epoch 2 the
    # other way round (-1); one seed has no seed noise to report.
    top1 = {"mobilenet_v2@0.35": (10, 60, 90), "mobilenet_v2@0.35:16+4": (20, 50, 91),
            "mobilenet_v2@0.35:6+4": (30, 40, 92)}
    rows = [TABLE_HEADER] + [f"{arch},0,{epoch},{v},99{COSTS}" for arch, values in top1.items()
                             for epoch, v in enumerate(values, start=1)]
    (tmp_path / "tabular_y.csv").write_text("\n".join(rows) + "\n")
    _, out = bench(capsys, "seed-noise", str(tmp_path / "tabular_y.csv"))
    out = " ".join(out.split())
    assert ("tabular_y: 3 architectures x 1 seed(s) with every seed: seed noise and the seed-to-seed correlation "
            "need two seeds and three architectures") in out
    assert ("tabular_y: top-1 at an earlier epoch against the final (epoch 3) top-1, Spearman across architectures "
            "(what a mo-asha rung there ranks by): seed 0 (3 architectures): epoch 1 +1.00, epoch 2 -1.00") in out
    assert "| 92.00 | +2.00 [no CI] | | one seed |" in out.replace("│", "|")


@pytest.mark.parametrize("study, figures", [
    # A's CI by hand: mean Spearman (0.40 - 0.16 - 0.04) / 3 = 0.067 over 8 architectures, Fisher's z 0.067 +- 1.96
    # sqrt((1 + 0.067^2 / 2) / 5) = 0.067 +- 0.878, back through tanh: [-0.67, +0.74].
    ("a", ("0.58", "0.31", "0.00", "+0.40, -0.16, -0.04", "+0.07 [-0.67, +0.74]")),
    ("b", ("1.10", "0.67", "0.23", "-0.50, +0.07, +0.62", "+0.06 [-0.67, +0.74]")),
])
def test_bench_seed_noise_on_the_committed_signal_studies_gives_the_readmes_rows(capsys, study, figures):
    seed, between, beyond, pairs, mean = figures
    _, out = bench(capsys, "seed-noise", str(ROOT / "benchmarks" / "data" / f"signal_cluttered_{study}_trials.csv"))
    assert (f"cluttered_{study}: 8 architectures x 3 seeds; seed std {seed} points, between-architecture std {between} "
            f"(beyond noise {beyond}); seed-to-seed Spearman {pairs} (mean, 95% CI: {mean}); goal r >= 0.6: unclear "
            "(the CI spans it)") in " ".join(out.split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    row = f"(`benchmarks/signal/cluttered_{study}.yaml`) | {seed} | {between} | {beyond} | {pairs} ({mean}) | unclear |"
    assert row in readme


def test_bench_seed_noise_on_the_committed_digits_table_gives_the_readmes_row(capsys):
    _, out = bench(capsys, "seed-noise", str(ROOT / "benchmarks" / "data" / "tabular_digits.csv"))
    line = ("tabular_digits: 125 architectures x 2 seeds; seed std 0.73 points, between-architecture std 0.46 (beyond "
            "noise 0.00); seed-to-seed Spearman -0.04 (mean, 95% CI: -0.04 [-0.21, +0.14]); goal r >= 0.6: not met")
    # The CI by hand: Fisher's z of -0.04 +- 1.96 sqrt((1 + 0.0008) / 122) = -0.04 +- 0.1775, back through tanh.
    assert line in " ".join(out.split())
    row = ("| digits tabular benchmark, 125 architectures x 2 seeds, 3 epochs | 0.73 | 0.46 | 0.00 "
           "| -0.04 [-0.21, +0.14] | not met |")
    assert ("seed 0 (125 architectures): epoch 1 +0.14, epoch 2 +0.19; seed 1 (125 architectures): epoch 1 +0.24, "
            "epoch 2 +0.51") in " ".join(out.split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert row in readme and "epoch-1 top-1 ranks the architectures as the final top-1 does at Spearman +0.14 and " \
                             "+0.24 (seeds 0 and 1), epoch 2 at +0.19 and +0.51" in readme
