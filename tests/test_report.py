"""Reports from a run directory: the front, hypervolume (checked against pymoo), files, plots and bad input."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from ulsam_search.config import SearchConfig
from ulsam_search.errors import InvalidInput
from ulsam_search.report import hypervolume, hypervolume_history, knee_point, read_trials, write_report
from ulsam_search.search.rundir import STUDY_NAME, RunFacts
from ulsam_search.search.records import COLUMNS, journal_storage, pareto_mask

BASELINE = RunFacts(input_size=32, num_classes=10, small_input=True, baseline_arch="mobilenet_v2@0.35",
                    baseline_macs=1000, baseline_params=100)


def _pymoo_hv(losses: np.ndarray) -> float:
    from pymoo.indicators.hv import HV

    inside = losses[np.all(losses < 1, axis=1)]
    return float(HV(ref_point=np.ones(losses.shape[1]))(inside)) if len(inside) else 0.0


@pytest.mark.parametrize("objectives", [2, 3])
def test_hypervolume_agrees_with_pymoo(objectives):
    rng = np.random.default_rng(objectives)
    for _ in range(5):
        losses = rng.uniform(0, 1.2, size=(40, objectives))  # some points outside the reference box
        assert hypervolume(losses) == pytest.approx(_pymoo_hv(losses), rel=1e-9, abs=1e-12)
    assert hypervolume(np.array([[0.5, 0.5]])) == pytest.approx(0.25)
    assert hypervolume(np.array([[1.5, 0.1]])) == 0.0


def test_pareto_mask_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(60, 3)).astype(float)  # many ties and duplicates
    mask = pareto_mask(values, ["max", "min", "min"])
    costs = values * [-1, 1, 1]
    for i, row in enumerate(costs):
        dominated = any(np.all(other <= row) and np.any(other < row) for other in costs)
        assert mask[i] == (not dominated)


def test_knee_is_closest_to_the_ideal_point():
    assert knee_point(np.array([[0.0, 0.9], [0.3, 0.3], [0.9, 0.0]])) == 1
    assert knee_point(np.empty((0, 2))) is None


def _row(number, arch, status, top1=None, macs=1000, params=100, **extra):
    row = {c: None for c in COLUMNS}
    row.update(number=number, arch=arch, backbone="mobilenet_v2", width=0.35, status=status, top1=top1,
               top5=None if top1 is None else min(100.0, top1 + 1), macs=macs, params=params, flops=2 * macs,
               epochs_done=3 if status == "COMPLETE" else 0, epochs_budget=3, feasible=status != "INFEASIBLE",
               seed=0, seconds=10.0, started_at=1000.0 + 10 * number)
    row.update(extra)
    row["block_12"] = arch.split("12")[1][:2] if ":12" in arch else "none"
    row["block_15"] = arch.split("15")[1][:2] if "15" in arch.split(":")[-1] else "none"
    return row


def make_run(root: Path, rows=None, objectives=("top1", "macs")) -> Path:
    """A run directory as ``run_search`` leaves it (config.yaml, run.json, trials.csv), with chosen trials."""
    run = root / "runs" / "fixture"
    run.mkdir(parents=True)
    config = SearchConfig(name="fixture", backbone="mobilenet_v2", width=0.35, space={"blocks": [12, 15]},
                          objectives=list(objectives), n_trials=8)
    (run / "config.yaml").write_text(config.to_yaml())
    BASELINE.write(run / "run.json")
    rows = rows if rows is not None else [
        _row(0, "mobilenet_v2@0.35", "COMPLETE", 90.0),
        _row(1, "mobilenet_v2@0.35:12=4", "COMPLETE", 91.0, macs=900, params=95),  # dominates the baseline
        _row(2, "mobilenet_v2@0.35:12+4", "COMPLETE", 93.0, macs=1100, params=101),  # on the front
        _row(3, "mobilenet_v2@0.35:15=4", "COMPLETE", 89.0, macs=950, params=96),  # dominated by 1
        _row(4, "mobilenet_v2@0.35:12=4,15=4", "COMPLETE", 85.0, macs=850, params=91),  # on the front
        _row(5, "mobilenet_v2@0.35:15+1", "PRUNED", 60.0, epochs_done=1, resumed_from_epoch=1),
        _row(6, "mobilenet_v2@0.35:12=1", "FAILED", error="RuntimeError: boom"),
        _row(7, "mobilenet_v2@0.35:12+1,15+4", "INFEASIBLE", macs=1300, error="MACs 1,300 > max_macs 1,200"),
    ]
    pd.DataFrame(rows).to_csv(run / "trials.csv", index=False)
    return run


def test_report_files_front_deltas_and_hypervolume(tmp_path):
    run = make_run(tmp_path)
    out = write_report(run, tmp_path / "report")
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "index.html", "pareto.csv", "pareto.md", "summary.json", "trials.csv", "hypervolume.png",
        "parallel_choices.png", "placement_heatmap.png", "top1_vs_macs.png", "top1_vs_params.png"])
    front = pd.read_csv(out / "pareto.csv")
    assert front["number"].tolist() == [4, 1, 2]  # sorted by MACs; the baseline and trial 3 are dominated
    raw = pd.read_csv(out / "trials.csv", dtype=str).set_index("number")  # whole numbers stay whole beside blanks
    assert raw["resumed_from_epoch"].fillna("").tolist() == ["", "", "", "", "", "1", "", ""]
    assert front["d_top1"].tolist() == pytest.approx([-5.0, 1.0, 3.0])
    assert front["d_macs_pct"].tolist() == pytest.approx([-15.0, -10.0, 10.0])
    assert front["paper_variant"].fillna("").tolist() == ["paper-mv2-c/4 @0.35", "paper-mv2-a/4 @0.35", ""]
    assert front["command"][0].startswith("ulsam-search train 'mobilenet_v2@0.35:12=4,15=4' --dataset digits")

    info = json.loads((out / "summary.json").read_text())
    assert info["counts"] == {"COMPLETE": 5, "PRUNED": 1, "FAILED": 1, "INFEASIBLE": 1}
    assert info["pareto_size"] == 3 and info["baseline"]["top1"] == 90.0
    # Reference: the baseline's MACs and chance level (10 classes); trial 2 costs more than the baseline.
    assert info["hypervolume"]["reference_point"] == {"top1": 10.0, "macs": 1000.0}
    losses = np.array([[(100 - 85) / 90, 0.85], [(100 - 91) / 90, 0.9], [(100 - 93) / 90, 1.1]])
    assert info["hypervolume"]["value"] == pytest.approx(_pymoo_hv(losses))
    assert info["best"]["top1"]["number"] == 2 and info["best"]["macs"]["number"] == 4
    assert info["knee"]["number"] == 1
    assert info["wall_seconds"] == pytest.approx(80.0)

    markdown = (out / "pareto.md").read_text()
    assert "| 1 (knee) | `mobilenet_v2@0.35:12=4` (paper-mv2-a/4 @0.35) |" in markdown
    for reason in ("stopped by the scheduler after epoch 1 of 3", "RuntimeError: boom", "MACs 1,300 > max_macs 1,200"):
        assert reason in markdown
    for png in out.glob("*.png"):
        with Image.open(png) as image:
            assert image.width > 300 and image.height > 200
    page = (out / "index.html").read_text()
    assert page.count('class="plot"') == 5 and "Plotly.newPlot" in page and "ulsam-search train" in page
    assert len(page) > 3_000_000  # plotly.js embedded: the page works offline
    assert info["stopped"] is False and info["confirm_pending"] is False
    assert "Incomplete" not in markdown and "<strong>Incomplete" not in page


def test_a_run_that_stopped_early_is_reported_as_incomplete(tmp_path):
    """5 rows of a run of 8 trials and no journal: a killed run before its last trials; every file says so."""
    run = make_run(tmp_path)
    pd.read_csv(run / "trials.csv").head(5).to_csv(run / "trials.csv", index=False)
    out = write_report(run, tmp_path / "report")
    warning = "the run has not finished its 8 trials (it stopped, or is still running), so the front"
    assert json.loads((out / "summary.json").read_text())["stopped"] is True
    assert f"**Incomplete**: {warning}" in (out / "pareto.md").read_text()
    assert f"<strong>Incomplete</strong>: {warning}" in (out / "index.html").read_text()


def test_a_confirm_stage_started_without_results_is_reported_as_incomplete(tmp_path):
    run = make_run(tmp_path)
    (run / "confirm").mkdir()
    (run / "confirm" / "config.yaml").write_text("killed before its first result\n")
    out = write_report(run, tmp_path / "report")
    markdown = (out / "pareto.md").read_text()
    assert json.loads((out / "summary.json").read_text())["confirm_pending"] is True
    assert "**Incomplete**: the confirm stage has not finished (it stopped, or is still running), so the front's " \
           "Δ columns are still single runs" in markdown


def test_a_run_with_a_trial_still_running_is_incomplete_and_an_unreadable_journal_leaves_the_rows_to_judge(tmp_path):
    run = make_run(tmp_path)  # all 8 rows of its 8 trials
    journal = run / "optuna.log"
    journal.write_text("not a journal\n")
    assert json.loads((write_report(run, tmp_path / "a") / "summary.json").read_text())["stopped"] is False
    journal.unlink()
    study = optuna.create_study(study_name=STUDY_NAME, storage=journal_storage(journal),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.ask()  # a retry still training: the rows reach n_trials, the run has not finished
    assert json.loads((write_report(run, tmp_path / "b") / "summary.json").read_text())["stopped"] is True


def test_text_columns_read_back_as_text_when_they_look_like_numbers(tmp_path):
    """A node id that happens to be all digits and a block every trial gave `+4` stay the strings they were."""
    rows = [_row(n, "mobilenet_v2@0.35:12+4", "COMPLETE", 90.0 + n, node="845694656954", trial_id="00012")
            for n in range(2)]
    run = make_run(tmp_path, rows)
    table = read_trials(run / "trials.csv")
    assert table["node"].tolist() == ["845694656954"] * 2 and table["trial_id"].tolist() == ["00012"] * 2
    assert table["block_12"].tolist() == ["+4", "+4"] and table["block_15"].tolist() == ["none", "none"]
    assert table["top1"].tolist() == [90.0, 91.0]


def test_hypervolume_history_only_grows_and_ends_at_the_front_value(tmp_path):
    run = make_run(tmp_path)
    out = write_report(run, tmp_path / "report")
    table = pd.read_csv(out / "trials.csv")
    reference = {"top1": 10.0, "macs": 1000.0}
    history = hypervolume_history(table, ["top1", "macs"], reference)
    assert history["number"].tolist() == list(range(8))
    assert np.all(np.diff(history["hypervolume"]) >= 0)
    assert history["hypervolume"][0] == 0 and history["hypervolume"][1] > 0  # the baseline is the reference cost
    assert history["hypervolume"].iloc[-1] == pytest.approx(json.loads((out / "summary.json").read_text())
                                                            ["hypervolume"]["value"])


def test_a_new_report_replaces_the_old_one_whole(tmp_path):
    run = make_run(tmp_path)
    out = write_report(run, tmp_path / "report")
    (out / "stale.txt").write_text("from an older report")
    write_report(run, out)
    assert not (out / "stale.txt").exists() and (out / "index.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_writer_killed_while_replacing_a_report_leaves_the_old_or_the_new_one(tmp_path, monkeypatch):
    """The kill is simulated at every rename the replacement makes after the first: the old report or the new one
    must be in place, whole (two renames, out -> old then staging -> out, leave neither in between)."""
    import os

    run = make_run(tmp_path)
    out = write_report(run, tmp_path / "report")
    real_replace, calls = os.replace, []

    def killed_after_the_first_rename(source, target):
        calls.append(target)
        if len(calls) > 1:
            raise KeyboardInterrupt  # the writer dies here
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", killed_after_the_first_rename)
    try:
        write_report(run, out)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert out.is_dir() and (out / "index.html").read_text().rstrip().endswith("</html>")


def _cli(*args, cwd=None):
    exe = str(Path(sys.executable).parent / "ulsam-search")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd)


def _assert_bad_input(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_report_bad_input_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    _assert_bad_input(_cli("report", str(tmp_path / "nope"), "--out", str(out)), "does not exist")
    run = make_run(tmp_path)
    trials = (run / "trials.csv").read_text()

    (run / "trials.csv").write_text(trials[: trials.index("mobilenet_v2@0.35:15+1") + 10])  # cut mid-row
    _assert_bad_input(_cli("report", str(run), "--out", str(out)), "trials.csv: row 7 is truncated or corrupt")
    (run / "trials.csv").write_bytes(b"\x00\xff\x13garbage\n\x00")
    _assert_bad_input(_cli("report", str(run), "--out", str(out)), "not a trials table")
    (run / "trials.csv").write_text(trials.splitlines()[0] + "\n")
    _assert_bad_input(_cli("report", str(run), "--out", str(out)), "has no finished trials yet")
    (run / "trials.csv").unlink()
    _assert_bad_input(_cli("report", str(run), "--out", str(out)), "has no finished trials yet")
    assert not out.exists()

    latency = make_run(tmp_path / "latency", objectives=("top1", "latency"))
    _assert_bad_input(_cli("report", str(latency), "--out", str(out)),
                      "objective latency has no values in column latency_ms")
    _assert_bad_input(_cli("report", str(tmp_path), "--out", str(out)), "is not a run directory")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


CHROMIUM = Path("/usr/bin/chromium")


def _browser_or_skip() -> None:
    """In CI a missing browser fails the test, naming what is missing; elsewhere it skips with the reason."""
    missing = [what for what, present in (
        (f"Debian's chromium ({CHROMIUM}; `make browser` runs apt-get install chromium)", CHROMIUM.exists()),
        ("the playwright package (pip install -e '.[test]')", importlib.util.find_spec("playwright") is not None),
    ) if not present]
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the browser test cannot run: missing {' and '.join(missing)}")
    if missing:
        pytest.skip(f"missing {' and '.join(missing)}")


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(tmp_path):
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    out = write_report(make_run(tmp_path), tmp_path / "report")
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto((out / "index.html").as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === 5", timeout=30_000)
            rendered = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('div.plot')].map(div => {
                const plot = div.querySelector('.js-plotly-plot');
                return [div.id, {traces: plot.data.length,
                                 points: plot.querySelectorAll('.scatterlayer .point').length,
                                 heatmap: plot.querySelectorAll('.hm image').length,
                                 axes: plot.querySelectorAll('.parcoords .y-axis').length}];
            }))""")
        finally:
            browser.close()
    assert errors == []
    # 1 pruned + 1 dominated + 3 front points and the baseline star, on both cost plots.
    assert rendered["plot-top1_vs_macs"]["points"] == rendered["plot-top1_vs_params"]["points"] == 7
    assert rendered["plot-hypervolume"]["points"] == 8
    assert rendered["plot-placement_heatmap"]["heatmap"] == 1
    assert rendered["plot-parallel_choices"]["axes"] == 3  # block 12, block 15, top-1


@pytest.mark.parametrize("column, value, message", [
    ("seed", 1.5, "row 5 is truncated or corrupt (seed 1.5 is not a whole number)"),
    ("retries", "x", "row 5 is truncated or corrupt (retries 'x' is not a number)"),
])
def test_a_whole_number_column_holding_a_fraction_or_text_is_bad_input(tmp_path, column, value, message):
    run = make_run(tmp_path)
    frame = pd.read_csv(run / "trials.csv").astype({column: object})
    frame.loc[3, column] = value  # the fourth trial: row 5 of the file, after the header
    frame.to_csv(run / "trials.csv", index=False)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        read_trials(run / "trials.csv")
