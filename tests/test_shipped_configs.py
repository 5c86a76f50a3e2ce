"""Every config in search_spaces/ and benchmarks/signal/ runs end to end through the real CLI, the way a user runs
it: from a folder that is not the repository, on data the test writes there in the exact layout the config names (CIFAR python batch
files, an ImageFolder tree with the config's class count, a state_dict file, the tabular benchmark's CSV), with
only --set overrides of budget, size and resources. Trials run in Ray's own trial folders, so a path resolved
anywhere but on the driver fails them."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from layouts import write_cifar, write_imagefolder, write_mobilenet_v2_state_dict
from ulsam_search.models import Architecture

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "ulsam-search")
SHIPPED = sorted(str(p.relative_to(ROOT)) for folder in ("search_spaces", "benchmarks/signal")
                 for p in (ROOT / folder).glob("*.yaml"))

BUDGET = ["training.epochs=1", "training.batch_size=16", "resources.gpu=0", "resources.cpu=1", "max_concurrent=2"]


def _write_layout(config: dict, cwd: Path) -> list[str]:
    """Write the data ``config`` names under ``cwd`` at the paths it gives; the size overrides that data needs."""
    dataset = config.get("dataset", {})
    name, root = dataset.get("name", "digits"), dataset.get("root")
    settings = []
    if name in ("cifar10", "cifar100"):
        write_cifar(cwd / root, name, n_train=200, n_test=50)
    elif name == "imagefolder":
        # one 12x12 image per class in train and val; trials train on 64 of them at 16x16
        write_imagefolder(cwd / root, classes=dataset["num_classes"], per_class=1, val_per_class=1, size=(12, 12))
        settings += ["dataset.input_size=16", "dataset.workers=1", "dataset.train_limit=64"]
    elif name == "cluttered-mnist":  # bundled: a slice of it (400 training digits, each held-out digit placed once)
        settings += ["dataset.train_limit=400", "dataset.options.val_placements=1"]
    pretrained = config.get("training", {}).get("pretrained")
    if pretrained:
        write_mobilenet_v2_state_dict(cwd / pretrained)
    table = config.get("backend", {}).get("table")
    if table:
        (cwd / table).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / table, cwd / table)
    return settings


def _study_settings(study: dict) -> list[str]:
    """One seed and at most two cells plus the baseline."""
    settings = ["study.seeds=1"]
    if study["kind"] == "archs":
        single = next(arch for arch in study["archs"] if "," not in arch)  # a --set list splits at commas
        settings += [f"study.archs=[{single}]"]
    elif study["kind"] == "subspaces":
        settings += [f"study.archs=[{study['archs'][0]}]", f"study.groups=[{study['groups'][0]}]"]
    else:
        settings += ["study.blocks=[16]", f"study.groups=[{study['groups'][0]}]"]
    return settings


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_runs_end_to_end_from_another_folder(tmp_path, name):
    config = yaml.safe_load((ROOT / name).read_text())
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    settings = BUDGET + _write_layout(config, cwd)
    if "study" in config:
        command, settings = "ablate", settings + _study_settings(config["study"])
    else:
        command, settings = "run", settings + ["n_trials=2"]
        settings += ["confirm.top=1", "confirm.seeds=2"] if "confirm" in config else []
    argv = [EXE, command, str(ROOT / name), "--quiet"]
    for setting in settings:
        argv += ["--set", setting]
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir = cwd / "runs" / config["name"]
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"error": str})
    assert len(trials) >= 2 and (trials["status"] == "COMPLETE").all(), trials[["arch", "status", "error"]]
    assert (trials["epochs_done"] == 1).all()
    frozen = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert frozen["training"]["epochs"] == 1 and frozen["resources"]["gpu"] == 0  # the --set values, recorded
    for section, key in (("dataset", "root"), ("training", "pretrained"), ("backend", "table")):
        given = config.get(section, {}).get(key)
        if given:  # frozen as the absolute path under the folder the command ran in
            assert frozen[section][key] == str(cwd / given)
    assert (cwd / "reports" / config["name"] / "index.html").is_file()
    if "confirm" in config:  # the run ends by confirming its front, unless the front is the baseline alone
        front = pd.read_csv(cwd / "reports" / config["name"] / "pareto.csv")
        if (front["arch"] != str(Architecture(frozen["backbone"], frozen["width"]))).any():
            confirmed = pd.read_csv(run_dir / "confirm.csv")
            assert len(confirmed) == 4 and set(confirmed["seed"]) == {frozen["training"]["seed"] + 1,
                                                                      frozen["training"]["seed"] + 2}
            assert "confirmed at 1 epochs with seeds" in result.stdout
        else:
            assert "nothing to confirm" in result.stderr
