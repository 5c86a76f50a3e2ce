import pytest

from ulsam_search.config import load_search_config
from ulsam_search.errors import InvalidInput


def _write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("space: {groupz: [1]}", "space.groupz: unknown key; valid keys here: blocks, ops, groups, per_block"),
    ("bogus: 1", "bogus: unknown key; valid keys here: name, backbone"),
    ("dataset: {name: mnist}", "dataset.name: Input should be 'digits', 'cifar10', 'cifar100', 'imagefolder', 'fake', "
                               "'mnist5k' or 'cluttered-mnist'"),
    ("training: {epochs: -1}", "training.epochs: Input should be greater than 0"),
    ("training: {epochs: three}", "training.epochs: Input should be a valid integer"),
    ("space: {per_block: {12: {ops: [insert, swap]}}}", "space.per_block.12.ops.1: Input should be 'none', 'insert'"),
    ("space: {blocks: [3, x]}", "space.blocks.1: Input should be a valid integer"),
    ("space: {groups: []}", "space.groups: must not be empty"),
    ("objectives: [top1, top1]", "objectives: each objective may appear once"),
    ("objectives: [top1, flops]", "objectives.1: Input should be 'top1', 'macs', 'params' or 'latency'"),
    ("sampler: {name: cmaes}", "sampler.name: Input should be 'nsga2', 'tpe', 'gp', 'random' or 'grid'"),
    ("resources: {gpu: -0.5}", "resources.gpu: Input should be greater than or equal to 0"),
    ("scheduler: {name: mo-asha, reduction_factor: 1}", "scheduler.reduction_factor: Input should be greater than 1"),
    ("objectives: [macs, params]\nscheduler: {name: mo-asha}", "mo-asha compares accuracy at each rung: add top1"),
    ("constraints: {min_top1: 120}", "constraints.min_top1: Input should be less than 100"),
    ("constraints: {max_latency_ms: 0}", "constraints.max_latency_ms: Input should be greater than 0"),
    ("latency: {device: tpu}", "latency.device: Input should be 'trial', 'cpu' or 'cuda'"),
    ("latency: {batch_size: 0}", "latency.batch_size: Input should be greater than 0"),
    ("sampler: {seed: -1}", "sampler.seed: Input should be greater than or equal to 0"),
    ("study: {kind: archs, archs: [mobilenet_v2@0.35], seeds: [0, -2]}",
     "study.seeds.1: Input should be greater than or equal to 0"),
    ("- a list", "expected a mapping of keys"),
    ("space: {blocks: [1,\n", "invalid YAML at line"),
])
def test_config_errors_name_the_field(tmp_path, text, message):
    with pytest.raises(InvalidInput) as caught:
        load_search_config(_write(tmp_path, text))
    assert str(caught.value).startswith("config cfg.yaml: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_defaults_name_overrides_and_yaml_round_trip(tmp_path):
    config = load_search_config(_write(tmp_path, "backbone: mobilenet_v1\nwidth: 0.5\n", "my-search.yaml"))
    assert (config.name, config.objectives, config.sampler.name, config.scheduler.name) == (
        "my-search", ("top1", "macs"), "nsga2", "fifo")
    assert config.space.groups == (1, 2, 4, 8, 16) and config.directions == ["maximize", "minimize"]
    changed = config.with_overrides(name="other", n_trials=3, address="10.0.0.1:6379")
    assert (changed.name, changed.n_trials, changed.ray.address, changed.width) == ("other", 3, "10.0.0.1:6379", 0.5)
    frozen = _write(tmp_path, changed.to_yaml(), "frozen.yaml")
    assert load_search_config(frozen) == changed
    train = config.training.train_config("cpu")
    assert (train.epochs, train.lr, train.device, train.seed) == (3, 0.05, "cpu", 0)
    with pytest.raises(InvalidInput, match="config command line: n_trials: Input should be greater than 0"):
        config.with_overrides(n_trials=0)
    with pytest.raises(InvalidInput, match="config .*missing.yaml does not exist"):
        load_search_config(tmp_path / "missing.yaml")


def test_shipped_configs_are_valid():
    from pathlib import Path

    from ulsam_search.search.space import build_space

    shipped = sorted((Path(__file__).parent.parent / "search_spaces").glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"quickstart", "mobilenet_v2_imagenet", "mobilenet_v1_imagenet",
                                         "mobilenet_v2_cub200", "mobilenet_v2_cifar100"}
    for path in shipped:
        config = load_search_config(path)
        assert build_space(config).size > 1, path.name
