"""The path a user walks: data on disk named by a relative path, the command run from another folder, trials in
Ray's own trial folders, an interrupted run resumed from elsewhere, a search that trains nothing, a cluster that
cannot fit a trial."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch
import yaml

from faults import STUCK_RUN_S, start_ray_with_faults
from layouts import write_cifar
from test_search import BASELINE, tiny
from ulsam_search.cli import main
from ulsam_search.errors import InvalidInput
from ulsam_search.search.runner import run_search
from ulsam_search.search.trial import TrialJob, trial_results

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).parent / "ulsam-search")
CIFAR_SEARCH = """backbone: mobilenet_v1
width: 0.25
dataset: {name: cifar10, root: data, train_limit: 64}
training: {epochs: 2, batch_size: 32, warmup_epochs: 0.5}
space: {blocks: [7, 9], groups: [1, 2]}
sampler: {name: random, seed: 1}
n_trials: 3
max_concurrent: 1
"""


def test_relative_data_root_interrupted_then_resumed_from_another_folder(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_cifar(project / "data", "cifar10", n_train=100, n_test=40)
    (project / "c.yaml").write_text(CIFAR_SEARCH)
    driver = subprocess.Popen([EXE, "run", "c.yaml", "--quiet", "--set", "training.lr=0.02"], cwd=project,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trials = project / "runs" / "c" / "trials.csv"
    deadline = time.time() + STUCK_RUN_S
    while time.time() < deadline and (not trials.exists() or len(pd.read_csv(trials)) < 1):
        assert driver.poll() is None, driver.stderr.read()
        time.sleep(0.3)
    driver.send_signal(signal.SIGINT)  # Ctrl-C
    driver.communicate(timeout=120)
    before = pd.read_csv(trials)
    assert 1 <= len(before) < 3 and (before["status"] == "COMPLETE").all(), before[["status", "error"]]
    frozen = yaml.safe_load((project / "runs" / "c" / "config.yaml").read_text())
    assert frozen["dataset"]["root"] == str(project / "data") and frozen["training"]["lr"] == 0.02

    resumed = subprocess.run([EXE, "resume", str(project / "runs" / "c"), "--quiet"], cwd=elsewhere,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = pd.read_csv(trials)
    assert len(after) == 3 and (after["status"] == "COMPLETE").all(), after[["status", "error"]]
    assert (elsewhere / "reports" / "c" / "index.html").is_file()


def test_a_search_that_trains_nothing_exits_1_with_the_counts_and_the_error(tmp_path):
    (tmp_path / "weights.pt").parent.mkdir(exist_ok=True)
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "weights.pt")  # matches no layer of the model
    (tmp_path / "s.yaml").write_text(tiny(n_trials=2).to_yaml().replace("name: tiny", "name: nothing"))
    result = subprocess.run([EXE, "run", "s.yaml", "--quiet", "--set", "training.pretrained=weights.pt"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1, result.stderr
    assert last.startswith("error: all 2 trials failed; 2 x InvalidInput: no tensor in "
                           f"{tmp_path / 'weights.pt'} matches the model"), last
    assert (tmp_path / "reports" / "nothing" / "index.html").is_file()  # the report is still written


def test_some_failures_exit_0_and_the_last_line_counts_them(tmp_path, capsys, monkeypatch):
    faults = {f"{BASELINE}:8+1": "raise@1"}
    start_ray_with_faults(faults)
    try:
        config = tiny(space={"blocks": [8], "ops": ["none", "insert"], "groups": [1, 2]}, sampler={"name": "grid"},
                      n_trials=3)
        (tmp_path / "f.yaml").write_text(config.to_yaml())
        monkeypatch.chdir(tmp_path)
        code = main(["run", "f.yaml", "--quiet"])
    finally:
        ray.shutdown()
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.strip().splitlines()[-1] == ("warning: 1 of 3 trials failed; 1 x RuntimeError: injected fault: a bug "
                                            "in this trial")


def test_a_trial_on_a_node_without_the_data_names_the_node_and_the_path(tmp_path):
    config = tiny(dataset={"name": "cifar10", "root": str(tmp_path / "absent"), "train_limit": None})
    job = TrialJob(config, str(tmp_path / "checkpoints"), True, 32, 10)
    results = list(trial_results({"arch": BASELINE, "number": 0, "macs": 1, "params": 1}, job, node="a1b2c3d4e5f6"))
    assert len(results) == 1
    assert results[0]["error"] == (f"FileNotFoundError: dataset.root {tmp_path / 'absent'} does not exist on node "
                                   f"a1b2c3d4e5f6 ({os.uname().nodename}); every node of the cluster needs it at the "
                                   f"same path")


def test_a_node_whose_data_root_lacks_the_data_set_says_so_and_names_the_node(tmp_path):
    (tmp_path / "data").mkdir()  # the root is there, CIFAR-10 is not
    config = tiny(dataset={"name": "cifar10", "root": str(tmp_path / "data"), "train_limit": None})
    job = TrialJob(config, str(tmp_path / "checkpoints"), True, 32, 10)
    [result] = trial_results({"arch": BASELINE, "number": 0, "macs": 1, "params": 1}, job, node="a1b2c3d4e5f6")
    assert result["error"].startswith(f"FileNotFoundError: cifar10 not found: expected {tmp_path / 'data'}/cifar-10")
    assert result["error"].endswith(f"(on node a1b2c3d4e5f6 ({os.uname().nodename}); every node of the cluster "
                                    f"needs it at the same path)")


def test_a_cluster_no_node_of_which_fits_a_trial_is_refused_before_anything_is_written(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        config = tiny(resources={"cpu": 1, "gpu": 1}, ray={"address": cluster.address})
        with pytest.raises(InvalidInput, match=rf"resources: each trial asks for 1 CPUs and 1 GPUs, but the cluster "
                                               rf"at {cluster.address} has at most 1 CPUs and 0 GPUs per node; "
                                               rf"lower them, e.g. --set resources.gpu=0"):
            run_search(config, tmp_path, progress=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert not (tmp_path / "tiny").exists()
