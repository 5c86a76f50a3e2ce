"""Fault injection on real searches: failing trials, a lost worker node, writers killed mid-write; reproducibility."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import ray

from faults import STUCK_RUN_S, start_ray_with_faults
from test_report import make_run
from test_search import BASELINE, _study, tiny
from ulsam_search.ablation.confirm import select_members
from ulsam_search.report import read_trials, write_report
from ulsam_search.search._ray import start_local_ray
from ulsam_search.search.records import pareto_set, write_table
from ulsam_search.search.runner import run_search
from ulsam_search.workflows import confirm_run

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent


def test_failing_trials_end_failed_with_their_error_and_the_search_goes_on(tmp_path):
    # 128 images in batches of 64: step 3 is the first step of epoch 2.
    faults = {f"{BASELINE}:8+1": "raise@1", f"{BASELINE}:8+2": "nan@3", f"{BASELINE}:8+4": "oom@2"}
    start_ray_with_faults(faults)
    try:
        config = tiny(space={"blocks": [8], "ops": ["none", "insert"], "groups": [1, 2, 4]},
                      sampler={"name": "grid"}, n_trials=4)
        table = run_search(config, tmp_path, progress=False)
    finally:
        ray.shutdown()
    rows = table.set_index("arch")
    assert sorted(rows.index) == sorted([BASELINE, *faults]) and len(table) == 4
    assert rows.loc[BASELINE, "status"] == "COMPLETE" and rows.loc[BASELINE, "epochs_done"] == 2
    errors = rows.loc[list(faults), "error"]
    assert (rows.loc[list(faults), "status"] == "FAILED").all()
    assert errors[f"{BASELINE}:8+1"] == "RuntimeError: injected fault: a bug in this trial"
    assert errors[f"{BASELINE}:8+2"].startswith("TrainingDiverged: ") and "epoch 2, step 1" in errors[f"{BASELINE}:8+2"]
    assert errors[f"{BASELINE}:8+4"].startswith("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "lower training.batch_size" in errors[f"{BASELINE}:8+4"]
    assert "a trial sharing a GPU may use resources.gpu x its memory" in errors[f"{BASELINE}:8+4"]
    assert rows.loc[list(faults), "epochs_done"].tolist() == [0, 1, 0]

    # Optuna knows them as failed; none is on the front; the report lists each with its error.
    states = {t.user_attrs["arch"]: t.state for t in _study(tmp_path / "tiny").trials}
    assert all(states[arch] == optuna.trial.TrialState.FAIL for arch in faults)
    assert pareto_set(table, config.objectives)["arch"].tolist() == [BASELINE]
    report = write_report(tmp_path / "tiny", tmp_path / "report")
    summary = json.loads((report / "summary.json").read_text())
    assert summary["counts"]["FAILED"] == 3 and summary["pareto_size"] == 1
    markdown = (report / "pareto.md").read_text()
    for arch in faults:
        line = next(line for line in markdown.splitlines() if f"`{arch}`" in line or f"| {arch} |" in line)
        assert "FAILED" in line and errors[arch].split(":")[0] in line

    # The cause fixed (no faults in this Ray), a resume with retry_failed trains each failed architecture once
    # more, beyond n_trials; the failures stay on record, and a later resume neither retries nor re-trains them.
    retried = run_search(config, tmp_path, progress=False, retry_failed=True)
    assert len(retried) == 7 and retried["number"].tolist() == list(range(7))
    again = retried[retried["number"] >= 4].set_index("arch")
    assert sorted(again.index) == sorted(faults) and (again["status"] == "COMPLETE").all()
    assert (again["epochs_done"] == 2).all() and again["duplicate_of"].isna().all()
    kept = ["number", "arch", "status", "error", "trial_id"]
    assert retried.iloc[:4][kept].equals(table[kept])  # the first attempt's rows, unchanged
    retry_of = {t.number: t.user_attrs.get("retry_of") for t in _study(tmp_path / "tiny").trials}
    assert {again.loc[arch, "number"]: rows.loc[arch, "number"] for arch in faults} == \
        {number: retry_of[number] for number in range(4, 7)}  # each retry names the failure it trains again
    assert read_trials(tmp_path / "tiny" / "trials.csv")["retry_of"].tolist()[4:] == \
        [rows.loc[arch, "number"] for arch in again.index]
    report = write_report(tmp_path / "tiny", tmp_path / "report")
    summary = json.loads((report / "summary.json").read_text())
    assert (summary["trials"], summary["retries"], summary["n_trials"]) == (7, 3, 4)
    assert "4 of 4 trials and 3 retries of failed ones: 4 complete, " in (report / "pareto.md").read_text()
    later = run_search(config, tmp_path, progress=False, retry_failed=True)
    assert later["trial_id"].tolist() == retried["trial_id"].tolist()  # nothing failed is left to retry


def test_retries_run_after_the_budgets_own_trials_so_a_grid_slice_keeps_its_points(tmp_path):
    """A grid slice (2 of 4 points, every ULSAM insert failing), then continued to 3 points with retry_failed: the
    grid's third point is asked before the retries, which run beyond n_trials and carry retry_of."""
    faults = {f"{BASELINE}:8+{g}": "raise@1" for g in (1, 2, 4)}
    config = tiny(space={"blocks": [8], "ops": ["none", "insert"], "groups": [1, 2, 4]}, sampler={"name": "grid"},
                  n_trials=2)
    start_ray_with_faults(faults)
    try:
        first = run_search(config, tmp_path, progress=False)
    finally:
        ray.shutdown()
    failed = first.loc[first["status"] == "FAILED", "arch"].tolist()
    assert len(first) == 2 and len(failed) >= 1
    table = run_search(config.with_overrides(n_trials=3), tmp_path, progress=False, retry_failed=True)
    trials = {t.number: t for t in _study(tmp_path / "tiny").trials}
    assert len(table) == 3 + len(failed) and table["arch"].iloc[:3].nunique() == 3  # three grid points
    assert "retry_of" not in trials[2].user_attrs and "grid_id" in trials[2].system_attrs  # the grid's own
    retries = table[table["number"] >= 3]
    assert sorted(retries["arch"]) == sorted(failed) and (retries["status"] == "COMPLETE").all()
    assert {trials[n].user_attrs["retry_of"] for n in retries["number"]} == \
        set(first.loc[first["status"] == "FAILED", "number"])


def test_a_confirm_training_that_failed_is_retried_once_its_cause_is_fixed(tmp_path):
    """A search, then its confirm stage with the member's trainings raising: the member has no seed in confirm.csv;
    `ulsam-search confirm --retry-failed` (no faults in the Ray it starts) trains each failed seed once more."""
    config = tiny(space={"blocks": [9], "ops": ["none", "replace"], "groups": [1, 2]}, sampler={"name": "grid"},
                  n_trials=3)
    table = run_search(config, tmp_path, progress=False)
    run = tmp_path / "tiny"
    member = select_members(pareto_set(table, config.objectives), config.objectives, BASELINE, 1, "front")[0]
    start_ray_with_faults({member: "raise@1"})
    try:
        first = confirm_run(run, {"top": 1, "seeds": 2}, progress=False)
    finally:
        ray.shutdown()
    assert first.stats["arch"].tolist() == [BASELINE]  # the member has no complete seed
    trials = pd.read_csv(run / "confirm" / "trials.csv")
    assert sorted(trials.loc[trials["status"] == "FAILED", "arch"]) == [member, member]

    retried = subprocess.run([str(Path(sys.executable).parent / "ulsam-search"), "confirm", str(run),
                              "--retry-failed", "--quiet", "--reports-dir", str(tmp_path / "reports")],
                             capture_output=True, text=True)
    assert retried.returncode == 0, retried.stderr
    assert "confirmed at 2 epochs with seeds 1, 2:" in retried.stdout
    rows = pd.read_csv(run / "confirm.csv")
    assert sorted(zip(rows["arch"], rows["seed"])) == sorted((a, s) for a in (BASELINE, member) for s in (1, 2))
    trials = pd.read_csv(run / "confirm" / "trials.csv")
    assert len(trials) == 6 and trials["retry_of"].notna().sum() == 2  # 4 of the stage's own, 2 retries
    assert (trials.tail(2)["status"] == "COMPLETE").all() and set(trials.tail(2)["arch"]) == {member}


def test_build_table_stops_on_a_failed_architecture_and_retry_failed_completes_it(tmp_path, capsys):
    """`bench build-table` through the CLI: an architecture whose trial raises stops the build with exit 1, a
    one-line error naming it and no table; the same command with --retry-failed trains it again and writes both."""
    import yaml

    from ulsam_search import cli

    config = yaml.safe_load((TESTS.parent / "search_spaces" / "tabular_digits.yaml").read_text())
    config.update(name="two", space={"blocks": [16], "ops": ["none", "insert"], "groups": [4]})
    config["training"]["epochs"], config["dataset"]["train_limit"], config["latency"]["repeats"] = 1, 128, 2
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(config))
    argv = ["bench", "build-table", "--config", str(tmp_path / "two.yaml"), "--seeds", "0",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "table.csv")]
    inserted = "mobilenet_v2@0.35:16+4"
    start_ray_with_faults({inserted: "raise@1"})
    try:
        assert cli.main(argv) == 1
    finally:
        ray.shutdown()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (f"error: RuntimeError: 1 of 2 architectures in {tmp_path / 'runs' / 'two-seed0'} have no "
                     f"complete trial ({inserted}; the first FAILED: RuntimeError: injected fault: a bug in this "
                     f"trial); no table written. Fix the cause (see {tmp_path / 'runs' / 'two-seed0' / 'trials.csv'}"
                     "), then run the same command with --retry-failed")
    assert not (tmp_path / "table.csv").exists()

    assert cli.main(argv + ["--retry-failed"]) == 0  # no faults in the Ray it starts now
    table = pd.read_csv(tmp_path / "table.csv")
    assert sorted(table["arch"]) == sorted(["mobilenet_v2@0.35", inserted]) and (table["epoch"] == 1).all()
    trials = pd.read_csv(tmp_path / "runs" / "two-seed0" / "trials.csv")
    failed = trials[trials["status"] == "FAILED"]
    assert len(trials) == 3 and failed["arch"].tolist() == [inserted]  # the failure stays on record
    assert trials.iloc[-1][["arch", "status"]].tolist() == [inserted, "COMPLETE"]  # the retry, numbered last


def test_a_lost_worker_node_is_retried_from_its_checkpoint(tmp_path):
    """Trials run on worker node A (the head has no CPUs); A is removed mid-trial, B joins: the trial is retried
    on B from its last epoch checkpoint and the search completes."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    node_a = cluster.add_node(num_cpus=1)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(tiny(n_trials=3, max_concurrent=1, dataset={"train_limit": 512},
                                training={"epochs": 3}, space={"blocks": [7, 9, 11]}).to_yaml())
    exe = str(Path(sys.executable).parent / "ulsam-search")
    driver = subprocess.Popen([exe, "run", str(config_path), "--runs-dir", str(tmp_path), "--quiet",
                               "--address", cluster.address, "--reports-dir", str(tmp_path / "reports")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = tmp_path / "tiny" / "checkpoints" / "trial_00000.pt"
        deadline = time.time() + STUCK_RUN_S
        while not first.exists():
            assert driver.poll() is None and time.time() < deadline, driver.stderr.read()
            time.sleep(0.05)
        cluster.remove_node(node_a)  # the baseline trial has a checkpoint of epoch 1 and is training epoch 2
        node_b = cluster.add_node(num_cpus=1)
        out, err = driver.communicate(timeout=STUCK_RUN_S)
    finally:
        driver.kill()
        cluster.shutdown()
    assert driver.returncode == 0, err
    table = pd.read_csv(tmp_path / "tiny" / "trials.csv")
    assert len(table) == 3 and (table["status"] == "COMPLETE").all(), table[["number", "status", "error"]]
    retried = table.set_index("number").loc[0]
    assert retried["retries"] == 1 and retried["resumed_from_epoch"] >= 1, table
    assert retried["node"] == node_b.node_id[:12] and (table["node"] == node_b.node_id[:12]).all()
    assert (table.loc[table["number"] > 0, "retries"] == 0).all()
    assert (table.loc[table["number"] > 0, "resumed_from_epoch"] == 0).all()


WRITER = """
import sys
from pathlib import Path
import pandas as pd
from ulsam_search.report import write_report
from ulsam_search.search.records import write_table
kind, run, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
tables = [pd.read_csv(run / "small.csv"), pd.read_csv(run / "large.csv")]
print("ready", flush=True)
for i in range(10**9):
    if kind == "table":
        write_table(tables[i % 2], out)
    else:
        write_report(run, out)
"""


def _kill_mid_write(kind: str, run: Path, out: Path, kills: int, max_delay: float) -> int:
    """Start a writer looping over ``kind`` writes, SIGKILL it at a random moment, ``kills`` times; returns how
    many kills left a temporary behind (landed in the middle of a write). Checks ``out`` after every kill: from the
    second kill on a finished file is there before the writer starts, and one (old or new, whole) must be there after.
    """
    rng = random.Random(0)
    mid_write = 0
    small, large = (pd.read_csv(run / name) for name in ("small.csv", "large.csv"))
    for kill in range(kills):
        if kill and not out.exists() and kind == "table":
            write_table(small, out)
        elif kill and not out.exists():
            write_report(run, out)
        existed = out.exists()
        writer = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(run), str(out)], stdout=subprocess.PIPE)
        assert writer.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, max_delay))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        mid_write += any(out.parent.glob(f".{out.name}.*.tmp"))
        assert out.exists() or not existed, f"kill {kill}: the {kind} that existed before the kill is gone"
        if kind == "table" and out.exists():
            table = read_trials(out)  # parses whole: no truncated row
            assert table.equals(read_trials(run / "small.csv")) or table.equals(read_trials(run / "large.csv"))
            assert len(table) in (len(small), len(large))
        elif out.exists():
            assert {p.name for p in out.iterdir()} >= {"index.html", "pareto.csv", "pareto.md", "summary.json",
                                                          "trials.csv", "top1_vs_macs.png"}
            assert json.loads((out / "summary.json").read_text())["trials"] == len(small)
            assert (out / "index.html").read_text().rstrip().endswith("</html>")
    return mid_write


def test_writers_killed_mid_write_never_leave_a_partial_file(tmp_path):
    run = make_run(tmp_path)
    small = pd.read_csv(run / "trials.csv")
    small.to_csv(run / "small.csv", index=False)
    pd.concat([small] * 4000, ignore_index=True).assign(number=lambda f: range(len(f))).to_csv(
        run / "large.csv", index=False)  # 32,000 rows: a write takes long enough to be killed inside
    table_out, report_out = tmp_path / "out" / "trials.csv", tmp_path / "out" / "report"
    table_out.parent.mkdir()
    assert _kill_mid_write("table", run, table_out, kills=5, max_delay=1.5) >= 1
    assert _kill_mid_write("report", run, report_out, kills=3, max_delay=3.0) >= 1
    # The next writer on this host removes what the killed ones left.
    write_table(small, table_out)
    write_report(run, report_out)
    assert not list(table_out.parent.glob(".*.tmp")), list(table_out.parent.iterdir())


def test_same_config_and_seed_give_the_same_proposals_and_metrics(tmp_path):
    config = tiny(n_trials=5, max_concurrent=1, sampler={"name": "nsga2", "seed": 3,
                                                         "options": {"population_size": 4}})
    start_local_ray(2)
    try:
        first = run_search(config, tmp_path / "a", progress=False)
        second = run_search(config, tmp_path / "b", progress=False)
    finally:
        ray.shutdown()
    columns = ["arch", "status", "top1", "top5", "val_loss", "macs", "params", "duplicate_of"]
    assert first["arch"].nunique() >= 3
    pd.testing.assert_frame_equal(first[columns], second[columns])
