"""The table backend: a search answered from a tabular benchmark through the real runner; bad tables."""

import hashlib
import math
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from test_search import BASELINE, _study, tiny
from ulsam_search.config import load_search_config
from ulsam_search.errors import InvalidInput
from ulsam_search.search._ray import start_local_ray
from ulsam_search.search.runner import prepare_run, run_search
from ulsam_search.search.backends.table import TABLE_COLUMNS, read_table

ROOT = Path(__file__).resolve().parent.parent
ARCHS = [BASELINE, f"{BASELINE}:8+1", f"{BASELINE}:8+2", f"{BASELINE}:8=1", f"{BASELINE}:8=2"]


def write_table(path: Path, epochs: int = 3, seeds=(0, 1)) -> pd.DataFrame:
    """Recorded epochs for the five architectures of ``tiny``'s block-8 space, each number distinct."""
    rows = [{"arch": arch, "seed": seed, "epoch": epoch, "top1": 40 + 15 * epoch + 1.234567 * i + 0.5 * seed,
             "top5": 80 + epoch + 0.1 * i, "val_loss": 2.0 / epoch + 0.01 * i, "train_seconds": 3.0 + i,
             "macs": 1000 + i, "params": 100 + i, "latency_ms": 0.5 + 0.25 * i}
            for i, arch in enumerate(ARCHS) for seed in seeds for epoch in range(1, epochs + 1)]
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    frame.to_csv(path, index=False)
    return frame


@pytest.mark.slow
def test_the_table_backend_reproduces_the_table_exactly(tmp_path):
    recorded = write_table(tmp_path / "table.csv")
    start_local_ray(2)
    try:
        config = tiny(space={"blocks": [8]}, sampler={"name": "grid"}, n_trials=5, training={"epochs": 3, "seed": 1},
                      objectives=["top1", "latency"], backend={"name": "table", "table": str(tmp_path / "table.csv")})
        table = run_search(config, tmp_path, progress=False)
        pruning = config.model_copy(update={"name": "pruned", "scheduler": config.scheduler.model_copy(
            update={"name": "mo-asha", "grace_period": 1, "reduction_factor": 3})})
        pruned = run_search(pruning, tmp_path, progress=False)
    finally:
        ray.shutdown()
    final = recorded[(recorded["seed"] == 1) & (recorded["epoch"] == 3)].set_index("arch")
    assert sorted(table["arch"]) == sorted(ARCHS) and (table["status"] == "COMPLETE").all()
    for row in table.itertuples():
        assert (row.top1, row.top5, row.val_loss, row.latency_ms) == tuple(
            final.loc[row.arch, ["top1", "top5", "val_loss", "latency_ms"]]), row.arch
    for trial in _study(tmp_path / "tiny").trials:  # every epoch, not only the last
        epochs = recorded[(recorded["arch"] == trial.user_attrs["arch"]) & (recorded["seed"] == 1)]
        assert [h["top1"] for h in trial.user_attrs["history"]] == epochs["top1"].tolist()
        assert trial.values == [trial.user_attrs["top1"], trial.user_attrs["latency_ms"]]
    assert not list((tmp_path / "tiny" / "checkpoints").glob("*.pt"))  # nothing trained

    # mo-asha sees the recorded epochs: a stopped trial holds the table's top-1 of the epoch it stopped at.
    stopped = pruned[pruned["status"] == "PRUNED"]
    assert len(stopped) >= 1
    for row in stopped.itertuples():
        at = recorded[(recorded["arch"] == row.arch) & (recorded["seed"] == 1) & (recorded["epoch"] == row.epochs_done)]
        assert row.top1 == at["top1"].iloc[0]


@pytest.mark.parametrize("change, message", [
    (lambda path: path.unlink(), "does not exist; build one with `ulsam-search bench build-table`"),
    (lambda path: pd.read_csv(path).drop(columns="latency_ms").to_csv(path, index=False),
     "is not a tabular benchmark (missing columns: latency_ms)"),
    (lambda path: pd.read_csv(path).assign(top1="n/a").to_csv(path, index=False), "missing or non-numeric values"),
    (lambda path: path.write_text(""), "is not a tabular benchmark"),
    (lambda path: path.write_text(path.read_text().splitlines()[0] + "\n"), "is not a tabular benchmark (no rows)"),
    (lambda path: pd.concat([pd.read_csv(path)] * 2).to_csv(path, index=False), "has 30 repeated (arch, seed, epoch) "
                                                                                 "row(s), the first "),
])
def test_a_bad_table_is_bad_input(tmp_path, change, message):
    path = tmp_path / "table.csv"
    write_table(path)
    change(path)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        read_table(path)


@pytest.mark.parametrize("changes, message", [
    ({"training": {"seed": 7}}, "holds seeds 0, 1, not 7 (training.seed / study.seeds)"),
    ({"training": {"epochs": 4}}, "holds 3 epochs per trial; training.epochs is 4"),
    ({"width": 0.5}, "does not hold mobilenet_v1@0.5: it was built for another backbone or width"),
])
def test_a_table_that_cannot_answer_the_config_is_refused_before_anything_runs(tmp_path, changes, message):
    write_table(tmp_path / "table.csv")
    config = tiny(space={"blocks": [8]}, backend={"name": "table", "table": str(tmp_path / "table.csv")}, **changes)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        prepare_run(config, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_backend_config_names_its_table():
    with pytest.raises(Exception, match="backend table needs table: PATH"):
        tiny(backend={"name": "table"})


def test_build_table_refuses_a_seed_with_a_failed_architecture(tmp_path):
    """An architecture with no complete trial would be a hole in the table: the build stops, naming it and the way
    on; one whose failure a retry completed is no hole."""
    check = runpy.run_path(str(ROOT / "benchmarks" / "build_table.py"))["check_complete"]
    trials = pd.DataFrame({"arch": ["a", "b", "c", "d"], "status": ["COMPLETE", "FAILED", "FAILED", "COMPLETE"],
                           "error": [None, "ValueError: boom\nTraceback ...", None, None]})
    with pytest.raises(RuntimeError, match=r"^2 of 4 architectures in .*run have no complete trial \(b, c; the first "
                                           r"FAILED: ValueError: boom\); no table written. Fix the cause \(see "
                                           r".*run/trials.csv\), then run the same command with --retry-failed$"):
        check(trials, tmp_path / "run")
    retried = pd.concat([trials, pd.DataFrame({"arch": ["b", "c"], "status": ["COMPLETE"] * 2, "error": [None] * 2})])
    check(retried, tmp_path / "run")  # nothing to refuse


SAMPLERS_BENCH = ROOT / "benchmarks" / "samplers.py"


def test_igd_plus_and_front_share_match_a_hand_computed_example():
    bench = runpy.run_path(str(SAMPLERS_BENCH))
    front = np.array([[0.0, 20.0], [2.0, 10.0]])  # ideal (0, 10), nadir (2, 20): normalised (0, 1) and (1, 0)
    # (1, 12) normalises to (0.5, 0.2): worse than (0, 1) by 0.5 in the first objective only, than (1, 0) by 0.2 in
    # the second only, so IGD+ = (0.5 + 0.2) / 2.
    assert bench["igd_plus"](np.array([[1.0, 12.0]]), front) == pytest.approx(0.35)
    assert bench["igd_plus"](front, front) == 0.0
    assert bench["igd_plus"](np.array([[-1.0, 5.0]]), front) == 0.0  # dominates the whole front
    assert bench["igd_plus"](np.empty((0, 2)), front) == math.inf
    assert bench["front_share"](["a", "c", "x"], ["a", "b", "c", "d"]) == 0.5


def test_epochs_to_reach_a_level_by_hand_with_ranges_and_overlap():
    bench = runpy.run_path(str(SAMPLERS_BENCH))
    # Two searches of three trials each (epochs trained so far, and the measures after each trial).
    runs = pd.DataFrame({"table_seed": 0, "seed": [0, 0, 0, 1, 1, 1], "epochs": [9, 18, 27, 9, 12, 21],
                         "hv_fraction": [0.5, 0.91, 0.99, 0.92, 0.95, 0.96],
                         "front_share": [0.0, 0.5, 1.0, 0.5, 0.5, 0.5], "igd_plus": [1.0, 0.3, 0.0, 0.2, 0.1, 0.1]})
    needed = bench["epochs_needed"](runs)
    assert needed["hv_fraction", 0.90] == [18, 9] and needed["hv_fraction", 0.98] == [27, math.inf]
    assert needed["front_share", 1.0] == [27, math.inf] and needed["igd_plus", 0.1] == [27, 12]  # lower is better
    assert needed["whole search"] == [27, 21]
    assert bench["spread"]([18, 9]) == "14 (9-18)" and bench["spread"]([27, math.inf]) == "not reached (27-never)"
    assert bench["spread"]([27, 30, math.inf]) == "30 (27-never)"
    assert bench["spread"]([36, 36]) == "36" and bench["spread"]([math.inf] * 3) == "not reached"
    # medians 50 / 15 and 50 / 27.5; the second overlaps (a mo-asha search needed 45, a FIFO one only 40)
    assert bench["saved"]([40, 60], [10, 20]) == "3.33x"
    assert bench["saved"]([40, 60], [10, 45]) == "1.82x (ranges overlap)"
    assert bench["saved"]([math.inf, math.inf], [10, 20]) == "FIFO's median never reaches it"
    assert bench["saved"]([10, 20], [math.inf, 30]) == "-" and bench["saved"]([10, 20], [math.inf] * 2) == "-"
    # mo-asha slower: medians 11 / 35 (0.31x), every mo-asha search after every FIFO one; then 22.5 / 35 overlapping
    assert bench["saved"]([10, 12], [30, 40]) == "0.31x"
    assert bench["saved"]([10, 35], [30, 40]) == "0.64x (ranges overlap)"


def test_the_sampler_benchmark_finds_the_configs_table_from_any_folder(tmp_path, monkeypatch):
    bench = runpy.run_path(str(SAMPLERS_BENCH))
    monkeypatch.chdir(tmp_path)  # the shipped config names benchmarks/data/tabular_digits.csv, relative
    config = load_search_config(ROOT / "search_spaces" / "tabular_digits_search.yaml")
    assert bench["config_table"](config) == ROOT / "benchmarks" / "data" / "tabular_digits.csv"
    (tmp_path / "benchmarks" / "data").mkdir(parents=True)
    (tmp_path / "benchmarks" / "data" / "tabular_digits.csv").write_text("a user's own table")
    assert bench["config_table"](config) == tmp_path / "benchmarks" / "data" / "tabular_digits.csv"  # theirs first
    trained = config.model_copy(update={"backend": config.backend.model_copy(update={"name": "train", "table": None})})
    with pytest.raises(InvalidInput, match=r"has backend train; it needs backend: \{name: table, table: CSV\}"):
        bench["config_table"](trained)


@pytest.mark.parametrize("argv, message", [
    (["--table", "{digits}", "--config", "{nine}"], "tabular_digits.csv holds 3 epochs per trial, config nine trains 9: "
                                                    "give the config made for that table (--config)"),
    (["--grace-periods", "0", "4"], "--grace-periods 0 4: a first rung lies in 1..3 epochs"),
    (["--table-seeds", "0", "5"], "--table-seeds 5: the table holds seeds 0, 1"),
])
def test_the_sampler_benchmark_refuses_bad_input_before_anything_runs(tmp_path, argv, message):
    import yaml

    config = yaml.safe_load((ROOT / "search_spaces" / "tabular_digits_search.yaml").read_text())
    config.update(name="nine", training={**config["training"], "epochs": 9})
    (tmp_path / "nine.yaml").write_text(yaml.safe_dump(config))
    digits = ROOT / "benchmarks" / "data" / "tabular_digits.csv"
    argv = [arg.format(digits=digits, nine=tmp_path / "nine.yaml") for arg in argv]
    with pytest.raises(InvalidInput, match=re.escape(message)):
        runpy.run_path(str(SAMPLERS_BENCH))["parse_plan"](argv)


def test_the_sampler_benchmark_takes_its_grace_periods_and_output_name_from_the_config(tmp_path):
    import yaml

    config = yaml.safe_load((ROOT / "search_spaces" / "tabular_digits_search.yaml").read_text())
    config["scheduler"]["grace_period"] = 3
    (tmp_path / "g3.yaml").write_text(yaml.safe_dump(config))
    parse = runpy.run_path(str(SAMPLERS_BENCH))["parse_plan"]
    assert parse(["--config", str(tmp_path / "g3.yaml")]).args.grace_periods == [1, 3]
    assert parse(["--config", str(tmp_path / "g3.yaml"), "--quick"]).args.grace_periods == [3]
    assert parse(["--grace-periods", "2", "1", "2"]).args.grace_periods == [1, 2]
    shutil.copy(ROOT / "benchmarks" / "data" / "tabular_digits.csv", tmp_path / "tabular_mine.csv")
    plan = parse(["--table", str(tmp_path / "tabular_mine.csv")])
    assert plan.table_path == tmp_path / "tabular_mine.csv"  # --table overrides the config's
    stem = runpy.run_path(str(SAMPLERS_BENCH))["output_stem"]
    assert stem(plan.table_path) == "samplers_mine" and stem(ROOT / "x" / "tabular_digits.csv") == "samplers_digits"


def _rows(section: str) -> dict[str, list[tuple[float, float]]]:
    """sampler -> [(mean, std), ...] from the rows of one printed table."""
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if len(cells) > 1 and "±" in cells[1]:
            rows[cells[0]] = [tuple(float(x) for x in c.split("±")) for c in cells[1:]]
    return rows


def _hashes(folder: Path) -> dict[str, str]:
    """Every file under folder (sub-folders too) -> its sha256."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow
def test_the_sampler_benchmark_runs_on_a_slice_of_the_shipped_table():
    shipped = ROOT / "benchmarks" / "data" / "tabular_digits.csv"
    table = read_table(shipped)
    assert len(table.archs) == 125 and table.seeds == (0, 1) and table.epochs == 3
    committed = _hashes(ROOT / "benchmarks" / "data")
    result = subprocess.run([str(Path(sys.executable).parent / "ulsam-search"), "bench", "samplers", "--quick"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert committed == _hashes(ROOT / "benchmarks" / "data")  # not a byte changed, nor a file added
    out = Path(re.search(r"\(folder (.+)\)\s*$", result.stdout).group(1))
    try:
        assert out.name.startswith("ulsam-bench-samplers-") and out.parent == Path(tempfile.gettempdir())
        runs = pd.read_csv(out / "samplers_digits.csv")
        png = (out / "samplers_digits.png").stat().st_size
    finally:
        shutil.rmtree(out)
    seed = table.seeds[0]
    final = table.frame[table.frame["seed"] == seed]
    floor = final.loc[final["epoch"] == final["epoch"].max(), "top1"].min()  # the table's worst final top-1
    assert (f"reference: top-1 floor {floor:.10g}% (the table's worst final top-1, seed {seed}), MACs 15.6111 M "
            "(the baseline's)") in result.stdout
    assert "exhaustive front, seed 0: 3 architectures" in result.stdout
    assert "the best of the 8 with the fewest MACs" in result.stdout
    assert "Goals: NSGA-II or TPE >= 0.95 of the hypervolume within 25% of the space" in result.stdout
    assert re.search(r">= 0.95 within 25% of the space: (met|not met) \(nsga2 ", result.stdout)
    assert re.search(r"above random at every budget beyond 10 trials: (met|not met)", result.stdout)

    titles = ["Hypervolume / the exhaustive front's", "IGD+ to the exhaustive front", "Share of the exhaustive front"]
    starts = [result.stdout.index(title) for title in titles] + [result.stdout.index("Goals:")]
    hv, igd, share = (_rows(result.stdout[a:b]) for a, b in zip(starts, starts[1:]))
    for rows in (hv, igd, share):
        assert set(rows) == {"nsga2", "random", "cheapest alone"}
        assert all(len(cells) == 2 for cells in rows.values())  # 5% and 10% of the space
    assert all(math.isfinite(m) and 0 <= m <= 1.0 + 1e-9 for cells in hv.values() for m, _ in cells)
    assert all(math.isfinite(m) and m >= 0 for cells in igd.values() for m, _ in cells)
    assert all(0 <= m <= 1 for cells in share.values() for m, _ in cells)
    assert hv["cheapest alone"][0] == (0.931, 0.0) and share["cheapest alone"][0] == (0.333, 0.0)

    assert set(runs["sampler"]) == {"nsga2", "random"} and set(runs["scheduler"]) == {"fifo", "mo-asha"}
    assert set(runs["table_seed"]) == {seed} and set(runs["seed"]) == {0}
    assert set(runs.loc[runs["scheduler"] == "mo-asha", "grace_period"]) == {2}
    assert runs.loc[runs["scheduler"] == "fifo", "grace_period"].isna().all()
    assert (runs.groupby(["sampler", "scheduler"])["trials"].max() == 12).all()  # 10% of 125
    assert "mo-asha, grace 2 epochs" in result.stdout and "whole search" in result.stdout
    # cheapest alone holds 0.931 of the hypervolume and a third of the front: the 0.90 level is marked as trivial
    assert "hypervolume 0.90 *" in result.stdout and "hypervolume 0.95 *" not in result.stdout
    assert "front share 0.50 " in result.stdout and "front share 0.50 *" not in result.stdout
    assert runs["hv_fraction"].between(0, 1 + 1e-9).all() and png > 10_000
    assert (runs["igd_plus"] >= 0).all() and runs["front_share"].between(0, 1).all()
    assert (runs["floor"] == floor).all() and (runs["reference_macs"] == 15611136).all()


@pytest.mark.slow
def test_build_table_writes_every_epoch_and_grows_a_seed_without_retraining(tmp_path):
    """`bench build-table` through the CLI on a slice of the digits table's grid (1 epoch, 128 images): the CSV has
    a row per (ARCH, seed, epoch) with a latency; a larger --limit continues the same runs."""
    import yaml

    config = yaml.safe_load((ROOT / "search_spaces" / "tabular_digits.yaml").read_text())
    config["training"]["epochs"] = 1
    config["dataset"]["train_limit"] = 128
    config["latency"]["repeats"] = 2
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(config))
    exe = str(Path(sys.executable).parent / "ulsam-search")

    def build(limit: int) -> pd.DataFrame:
        result = subprocess.run([exe, "bench", "build-table", "--config", "small.yaml", "--seeds", "0", "--limit",
                                 str(limit), "--runs-dir", "runs", "--out", "out/table.csv"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"out/table.csv: {limit} architectures x 1 seeds, 1 epochs each ({limit} rows)" in result.stdout
        return pd.read_csv(tmp_path / "out" / "table.csv")

    first = build(2)
    assert list(first.columns) == list(TABLE_COLUMNS) and (first["epoch"] == 1).all() and (first["seed"] == 0).all()
    assert BASELINE.replace("mobilenet_v1@0.25", "mobilenet_v2@0.35") in set(first["arch"])  # the grid's first
    assert (first["latency_ms"] > 0).all() and first["top1"].between(0, 100).all()
    trials = tmp_path / "runs" / "tabular_digits-seed0" / "trials.csv"
    before = pd.read_csv(trials)
    grown = build(3)
    after = pd.read_csv(trials)
    assert len(after) == 3 and after["trial_id"].tolist()[:2] == before["trial_id"].tolist()  # nothing retrained
    assert set(first["arch"]) < set(grown["arch"]) and len(grown) == 3
