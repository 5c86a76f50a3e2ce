"""Searches on real Ray (a local instance, and a 2-node ray.cluster_utils.Cluster) with real training on digits."""

import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import ray
import yaml

from faults import STUCK_RUN_S
from ulsam_search.config import SearchConfig
from ulsam_search.cost import count_cost
from ulsam_search.errors import InvalidInput
from ulsam_search.report import write_report
from ulsam_search.search._ray import start_local_ray
from ulsam_search.search.records import pareto_set
from ulsam_search.search.rundir import STUDY_NAME
from ulsam_search.search.runner import run_search

pytestmark = pytest.mark.slow

BASELINE = "mobilenet_v1@0.25"


def tiny(**changes) -> SearchConfig:
    """mobilenet_v1@0.25 on 128 digits for 2 epochs: about a second of training per trial."""
    config = dict(name="tiny", backbone="mobilenet_v1", width=0.25, dataset={"name": "digits", "train_limit": 128},
                  training={"epochs": 2, "batch_size": 64, "warmup_epochs": 0.5},
                  space={"blocks": [7, 9], "groups": [1, 2]}, sampler={"name": "random", "seed": 1},
                  n_trials=6, max_concurrent=2)
    for key, value in changes.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    return SearchConfig(**config)


@pytest.fixture
def local_ray():
    start_local_ray(2)
    yield
    ray.shutdown()


def _study(run_dir: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "optuna.log")))
    return optuna.load_study(study_name=STUDY_NAME, storage=storage)


STATES = {"COMPLETE": optuna.trial.TrialState.COMPLETE, "INFEASIBLE": optuna.trial.TrialState.COMPLETE,
          "PRUNED": optuna.trial.TrialState.PRUNED, "FAILED": optuna.trial.TrialState.FAIL}


def assert_study_matches_table(study: optuna.Study, table: pd.DataFrame) -> None:
    """The Optuna journal and trials.csv agree trial by trial: number, ARCH, state, values and constraints
    (objectives top-1 and MACs; an infeasible trial is told top-1 0, the worst, which the table leaves empty)."""
    assert [t.number for t in study.trials] == table["number"].tolist()
    for trial, row in zip(study.trials, table.itertuples()):
        assert (trial.user_attrs["arch"], trial.user_attrs["status"]) == (row.arch, row.status), row
        assert trial.state == STATES[row.status], row
        if row.status in ("COMPLETE", "INFEASIBLE"):
            assert trial.values == [0.0 if row.status == "INFEASIBLE" else row.top1, row.macs], row
        else:
            assert trial.values is None, row
        if row.status != "FAILED":  # a failed trial is told no values and no constraints
            assert set(trial.constraints) == {"max_macs", "max_params", "max_latency_ms", "min_top1"}, row
            assert (max(trial.constraints.values()) > 0) == (row.status == "INFEASIBLE"), (row, trial.constraints)
        assert trial.user_attrs["epochs_done"] == row.epochs_done, row


def test_local_search_statuses_duplicates_and_study_agree(local_ray, tmp_path):
    baseline_macs = count_cost(BASELINE, 32, 10, "paper", True).macs
    # One block, 5 architectures: inserting ULSAM costs MACs and breaks max_macs (INFEASIBLE, never trained);
    # 8 trials over 3 feasible architectures must reuse an earlier result instead of training again.
    config = tiny(space={"blocks": [8]}, n_trials=8, constraints={"max_macs": baseline_macs})
    table = run_search(config, tmp_path, progress=False)
    run_dir = tmp_path / "tiny"
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "trials.csv", "optuna.log", "ray", "checkpoints"}
    assert pd.read_csv(run_dir / "trials.csv")["number"].tolist() == table["number"].tolist() == list(range(8))
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["constraints"]["max_macs"] == baseline_macs

    infeasible = table[table["status"] == "INFEASIBLE"]
    assert len(infeasible) > 0 and infeasible["arch"].str.contains(r":8\+").all()
    assert (infeasible["macs"] > baseline_macs).all() and (infeasible["epochs_done"] == 0).all()
    assert infeasible["trial_id"].isna().all()  # never became a Ray trial
    complete = table[table["status"] == "COMPLETE"]
    assert set(table["status"]) == {"INFEASIBLE", "COMPLETE"} and (complete["epochs_done"] == 2).all()
    trained = complete[complete["duplicate_of"].isna()]
    duplicates = table[table["duplicate_of"].notna()]
    assert trained["arch"].is_unique and len(duplicates) >= 1 and duplicates["trial_id"].isna().all()
    assert len(list((run_dir / "checkpoints").glob("trial_*.pt"))) == len(trained)
    for row in duplicates.itertuples():
        original = table.loc[int(row.duplicate_of)]
        assert (row.arch, row.status) == (original.arch, original.status)
        assert pd.isna(row.top1) and pd.isna(original.top1) or row.top1 == original.top1
    raw = pd.read_csv(run_dir / "trials.csv", dtype=str)  # whole numbers written as such beside missing values
    assert raw.loc[duplicates.index, "duplicate_of"].str.fullmatch(r"\d+").all(), raw["duplicate_of"]
    assert raw["macs"].str.fullmatch(r"\d+").all() and raw["retry_of"].isna().all()
    assert (table["block_8"] == table["arch"].map(lambda a: a.split(":8")[1] if ":8" in a else "none")).all()

    assert_study_matches_table(_study(run_dir), pd.read_csv(run_dir / "trials.csv"))
    # Two trials ran at the same time (max_concurrent 2 on 2 CPUs).
    spans = sorted((r.started_at, r.started_at + r.seconds) for r in trained.itertuples())
    assert len(spans) < 2 or any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


def test_mo_asha_prunes_and_pruned_trials_never_reach_the_front(local_ray, tmp_path):
    config = tiny(training={"epochs": 3}, n_trials=8, sampler={"name": "nsga2", "seed": 0,
                                                               "options": {"population_size": 4}},
                  scheduler={"name": "mo-asha", "grace_period": 1, "reduction_factor": 2})
    table = run_search(config, tmp_path, progress=False)
    pruned = table[table["status"] == "PRUNED"]
    assert len(table) == 8 and len(pruned) >= 1
    assert (pruned["epochs_done"] < 3).all() and (pruned["epochs_done"] >= 1).all()
    assert (table.loc[table["status"] == "COMPLETE", "epochs_done"] == 3).all()
    front = pareto_set(table, config.objectives)
    assert len(front) >= 1 and not set(front["number"]) & set(pruned["number"])
    states = {t.number: t.state for t in _study(tmp_path / "tiny").trials}
    assert all(states[n] == optuna.trial.TrialState.PRUNED for n in pruned["number"])


def test_mo_asha_after_a_driver_kill_prunes_as_an_uninterrupted_run(tmp_path):
    """One trial at a time, the grid sampler (its order does not depend on results or on resuming): a run killed
    mid-trial and resumed must prune the same trials at the same epochs as a run never interrupted."""
    config = tiny(training={"epochs": 3}, n_trials=7, max_concurrent=1, sampler={"name": "grid", "seed": 3},
                  scheduler={"name": "mo-asha", "grace_period": 1, "reduction_factor": 2})
    exe = str(Path(sys.executable).parent / "ulsam-search")
    outcomes = {}
    for kind in ("straight", "killed"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "tiny.yaml").write_text(config.to_yaml())
        command = [exe, "run", "tiny.yaml", "--quiet"]
        if kind == "straight":
            assert subprocess.run(command, cwd=tmp_path / kind, capture_output=True).returncode == 0
        else:
            driver = subprocess.Popen(command, cwd=tmp_path / kind, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            run_dir = tmp_path / kind / "runs" / "tiny"
            deadline = time.time() + STUCK_RUN_S
            while time.time() < deadline:  # once three trials have ended (their rungs are only in the journal)
                done = len(pd.read_csv(run_dir / "trials.csv")) if (run_dir / "trials.csv").exists() else 0
                if done >= 3:
                    break
                assert driver.poll() is None, driver.stderr.read().decode()
                time.sleep(0.05)
            driver.send_signal(signal.SIGKILL)
            driver.wait()
            assert 3 <= len(pd.read_csv(run_dir / "trials.csv")) < 7
            resumed = subprocess.run([exe, "resume", "runs/tiny", "--quiet"], cwd=tmp_path / kind,
                                     capture_output=True, text=True)
            assert resumed.returncode == 0, resumed.stderr
        table = pd.read_csv(tmp_path / kind / "runs" / "tiny" / "trials.csv")
        assert_study_matches_table(_study(tmp_path / kind / "runs" / "tiny"), table)
        outcomes[kind] = table[["number", "arch", "status", "epochs_done"]]
    assert outcomes["killed"].equals(outcomes["straight"]), \
        f"killed:\n{outcomes['killed'].to_string()}\nstraight:\n{outcomes['straight'].to_string()}"
    assert (outcomes["straight"]["status"] == "PRUNED").sum() >= 2  # pruning happened before and after the kill


def test_two_node_cluster_runs_trials_on_both_nodes(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        config = tiny(n_trials=4, ray={"address": cluster.address}, space={"blocks": [7, 9, 11]})
        table = run_search(config, tmp_path, progress=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    trained = table[table["trial_id"].notna()]
    assert len(table) == 4 and trained["node"].nunique() == 2, table[["number", "node"]]


def test_without_an_address_a_run_starts_its_own_instance_beside_a_running_cluster():
    """A cluster `ray start` left on the machine (its address in /tmp/ray/ray_current_cluster, which a bare
    ray.init() joins and then refuses num_cpus) is not joined: as the README says, no address means a local
    instance with this machine's CPUs."""
    from ray.cluster_utils import Cluster

    from ulsam_search.search._ray import connect_ray, local_resources

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        assert ray._private.services.find_bootstrap_address(None)  # what a bare ray.init() would join
        assert connect_ray(None)
        assert ray.get_runtime_context().gcs_address != cluster.address
        assert ray.cluster_resources()["CPU"] == local_resources()["CPU"]
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_resume_after_the_driver_is_killed(tmp_path):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(tiny(n_trials=7, space={"blocks": [7, 9, 11]}).to_yaml())
    exe = str(Path(sys.executable).parent / "ulsam-search")
    driver = subprocess.Popen([exe, "run", str(config_path), "--runs-dir", str(tmp_path), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    trials = tmp_path / "tiny" / "trials.csv"
    deadline = time.time() + STUCK_RUN_S
    while time.time() < deadline and (not trials.exists() or len(pd.read_csv(trials)) < 2):
        assert driver.poll() is None, driver.stderr.read().decode()
        time.sleep(0.5)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = pd.read_csv(trials)
    assert 2 <= len(before) < 7
    # A report of the interrupted run works (as it does while a search runs).
    partial = json.loads((write_report(tmp_path / "tiny", tmp_path / "partial") / "summary.json").read_text())
    assert partial["trials"] == len(before) and partial["n_trials"] == 7 and partial["stopped"] is True
    assert "**Incomplete**: the run has not finished its 7 trials (it stopped, or is still running), so the front " \
           "and its hypervolume cover only the trials finished so far" in (tmp_path / "partial" / "pareto.md").read_text()
    resumed = subprocess.run([exe, "resume", str(tmp_path / "tiny"), "--reports-dir", str(tmp_path / "reports")],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    after = pd.read_csv(trials)
    assert after["number"].tolist() == list(range(7)) and (after["status"] == "COMPLETE").all()
    kept = after.set_index("number").loc[before["number"], ["trial_id", "arch", "top1", "seconds"]]
    assert kept.reset_index(drop=True).equals(before[["trial_id", "arch", "top1", "seconds"]])  # nothing re-run
    assert_study_matches_table(_study(tmp_path / "tiny"), after)
    assert {p.name for p in (tmp_path / "tiny" / "ray").iterdir()} == {"attempt-1", "attempt-2"}
    assert "7 trials (7 complete" in resumed.stdout
    # Progress in a log: a line per finished trial, then the front's table once.
    assert "tiny: 7/7 trials done, 0 running, 7 complete, 0 pruned" in resumed.stderr
    # One line at the start, one per trial, and the final table's title.
    assert resumed.stderr.count("trials done") == 1 + (7 - len(before)) + 1 and "ARCH" in resumed.stderr
    # The report the resumed run ends with holds all of them, the baseline first.
    report = json.loads((tmp_path / "reports" / "tiny" / "summary.json").read_text())
    assert report["counts"]["COMPLETE"] == 7 and report["baseline"]["top1"] == after["top1"][0]
    assert report["stopped"] is False and "Incomplete" not in (tmp_path / "reports" / "tiny" / "pareto.md").read_text()
    assert after["arch"][0] == BASELINE


def test_a_grid_search_visits_the_baseline_first_and_every_point_once():
    from ulsam_search.search.samplers import make_sampler
    from ulsam_search.search.space import build_space

    config = tiny(space={"blocks": [7, 9], "groups": [1, 2]}, sampler={"name": "grid", "seed": 5})
    space = build_space(config)
    study = optuna.create_study(directions=config.directions, sampler=make_sampler(config, space))
    archs = [str(space.suggest(study.ask())) for _ in range(len(list(itertools.product(*space.grid().values()))))]
    assert archs[0] == BASELINE and len(set(archs)) == len(archs) == 25


@pytest.mark.parametrize("name", ["nsga2", "tpe", "gp", "random", "grid"])
def test_every_sampler_survives_the_pickling_ray_tune_gives_the_searcher(name):
    """Optuna 5.1's NSGA-II holds a thread lock: pickled with the searcher as Ray Tune does, a search crashed."""
    import ray.cloudpickle

    from ulsam_search.search.samplers import make_sampler
    from ulsam_search.search.space import build_space

    config = tiny(space={"blocks": [7, 9], "groups": [1, 2]}, sampler={"name": name, "seed": 5})
    space = build_space(config)
    sampler = ray.cloudpickle.loads(ray.cloudpickle.dumps(make_sampler(config, space)))
    study = optuna.create_study(directions=config.directions, sampler=sampler)
    for _ in range(3):
        trial = study.ask()
        study.tell(trial, [float(len(str(space.suggest(trial)))), 1.0])
    assert len(study.trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_the_runner_refuses_a_study_without_its_cell_space(tmp_path):
    # The runner cannot import the ablation stage (a later layer): ulsam_search.run_search hands it the cells.
    from ulsam_search.ablation import ablation_config

    study = ablation_config(tiny(study={"kind": "grid", "blocks": [8], "ops": ["replace"], "groups": [1]}))
    with pytest.raises(InvalidInput, match="an ablation study's space is its cells: run it with "
                                           "ulsam_search.run_search or `ulsam-search ablate`"):
        run_search(study, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_latency_is_timed_once_per_arch_reported_and_constrained(local_ray, tmp_path):
    # An ablation trains each ARCH once per seed: the second seed reuses the first one's latency (latency.json).
    import ulsam_search
    from ulsam_search.ablation import ablation_config

    study = ablation_config(tiny(objectives=["top1", "latency"], max_concurrent=1, latency={"repeats": 5},
                                 study={"kind": "grid", "blocks": [8], "ops": ["replace"], "groups": [1], "seeds": 2}))
    table = ulsam_search.run_search(study, tmp_path, progress=False)  # the runner given the study's cells
    cached = json.loads((tmp_path / "tiny" / "latency.json").read_text())
    assert sorted(cached) == sorted({BASELINE, f"{BASELINE}:8=1"}) and len(table) == 4
    assert (table["status"] == "COMPLETE").all() and (table["latency_ms"] > 0).all()
    assert table["latency_ms"].tolist() == [cached[arch] for arch in table["arch"]]
    report = write_report(tmp_path / "tiny", tmp_path / "report")
    assert {"top1_vs_latency.png", "latency_vs_macs.png"} <= {p.name for p in report.iterdir()}
    assert "latency_ms" in pd.read_csv(report / "pareto.csv").columns
    summary = json.loads((report / "summary.json").read_text())
    assert summary["hypervolume"]["reference_point"]["latency"] == cached[BASELINE]

    # A latency limit nothing meets: every proposal is timed on its node and never trained.
    config = tiny(n_trials=3, constraints={"max_latency_ms": 1e-6}, space={"blocks": [8]})
    table = run_search(config, tmp_path / "limited", progress=False)
    assert (table["status"] == "INFEASIBLE").all() and (table["epochs_done"] == 0).all(), table
    assert table["error"].str.fullmatch(r"latency [0-9.e+-]+ ms > max_latency_ms 1e-06").all(), table["error"]
    assert table["top1"].isna().all() and not list((tmp_path / "limited" / "tiny" / "checkpoints").glob("*.pt"))
    trials = _study(tmp_path / "limited" / "tiny").trials
    assert all(t.constraints["max_latency_ms"] > 0 for t in trials)


@pytest.mark.parametrize("sampler", ["grid", "nsga2"])
def test_a_trial_killed_inside_ask_is_relaunched_with_params(local_ray, tmp_path, sampler):
    """A driver killed after Optuna created a trial and before it stored the trial's params leaves a RUNNING trial
    without them: the resumed run gives it its params (the grid: its own point) and runs it, instead of failing."""
    from ulsam_search.config import load_search_config

    root = Path(__file__).resolve().parent.parent
    overrides = [f"backend.table={root / 'benchmarks' / 'data' / 'tabular_digits.csv'}", f"sampler.name={sampler}",
                 "sampler.options={}", "scheduler={name: fifo}", "max_concurrent=1"]
    config = load_search_config(root / "search_spaces" / "tabular_digits_search.yaml", overrides + ["n_trials=3"])
    run_search(config, tmp_path)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(tmp_path / config.name / "optuna.log")))
    storage.create_new_trial(storage.get_study_id_from_name(STUDY_NAME))  # the kill: created, nothing else stored
    assert [t.params for t in _study(tmp_path / config.name).trials][-1] == {}
    more = load_search_config(root / "search_spaces" / "tabular_digits_search.yaml", overrides + ["n_trials=5"])
    table = run_search(more, tmp_path)
    assert table["number"].tolist() == [0, 1, 2, 3, 4] and (table["status"] == "COMPLETE").all()
    assert table["arch"].notna().all() and table["top1"].notna().all()
    if sampler == "grid":  # the interrupted trial kept its grid point: five points, each once
        assert table["arch"].nunique() == 5
