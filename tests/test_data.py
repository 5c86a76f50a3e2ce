import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from layouts import write_cifar, write_image, write_imagefolder
from ulsam_search.data import DIGITS_VAL_FRACTION, TensorBatches, dataset_info, load_data, read_digits
from ulsam_search.errors import InvalidInput


def _all(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


def test_digits_is_real_split_stratified_and_fixed():
    data = load_data("digits", batch_size=100, seed=0)
    assert (data.num_train, data.num_val, data.num_classes, data.input_size) == (1438, 359, 10, 32)
    assert data.small_input and not data.synthetic
    val_images, val_labels = _all(data.val)
    assert val_images.shape == (359, 3, 32, 32) and val_images.dtype == torch.float32
    counts = torch.bincount(val_labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20% of each class (174..183 images per class)
    assert abs(359 / 1797 - DIGITS_VAL_FRACTION) < 0.01
    # The split does not depend on the training seed; the training order does.
    other = load_data("digits", batch_size=100, seed=1)
    assert torch.equal(_all(other.val)[1], val_labels)
    assert not torch.equal(_all(other.train)[1], _all(data.train)[1])
    # Normalised: roughly zero mean, unit spread; three identical grey channels.
    assert abs(val_images.mean().item()) < 0.1 and 0.9 < val_images.std().item() < 1.1
    assert torch.equal(val_images[:, 0], val_images[:, 2])


def test_digits_file_is_what_sklearn_loads():
    from sklearn.datasets import load_digits

    pixels, labels = read_digits()
    reference = load_digits()
    np.testing.assert_array_equal(pixels, reference.data)
    np.testing.assert_array_equal(labels, reference.target)


def test_tensor_batches_order_and_augmentation_depend_only_on_seed_and_epoch():
    images = torch.arange(6 * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(6, 3, 4, 4)
    labels = torch.arange(6)
    make = lambda: TensorBatches(images, labels, 4, mean=(0, 0, 0), std=(1 / 255,) * 3, train=True, pad=1,
                                 flip=True, seed=3)
    a, b = make(), make()
    a.set_epoch(2)
    b.set_epoch(2)
    xa, ya = _all(a)
    xb, yb = _all(b)
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and len(a) == 2
    assert sorted(ya.tolist()) == list(range(6))
    b.set_epoch(3)
    assert not torch.equal(_all(b)[0], xa)
    # Each augmented image is its source shifted by at most one pixel (zeros enter at the border), maybe mirrored.
    for image, label in zip(xa, ya):
        source = images[label].float()
        padded = torch.nn.functional.pad(source, (1, 1, 1, 1))
        crops = [padded[:, i:i + 4, j:j + 4] for i in range(3) for j in range(3)]
        assert any(torch.equal(image, c) or torch.equal(image, c.flip(2)) for c in crops)
    # Validation batches are neither shuffled nor augmented.
    plain = TensorBatches(images, labels, 4, mean=(0, 0, 0), std=(1 / 255,) * 3)
    assert torch.equal(_all(plain)[0], images.float())


def test_imagefolder_loads_with_imagenet_transforms(tmp_path):
    root = write_imagefolder(tmp_path / "folder")
    data = load_data("imagefolder", root, batch_size=4, input_size=24, workers=0)
    assert (data.num_classes, data.num_train, data.num_val, data.input_size) == (3, 9, 3, 24)
    images, labels = _all(data.train)
    assert images.shape == (9, 3, 24, 24) and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    val_images, val_labels = _all(data.val)
    assert val_labels.tolist() == [0, 1, 2]
    # A flat image centre-cropped and normalised: the channel values are (colour/255 - mean) / std everywhere.
    expected = (60 / 255 - 0.485) / 0.229
    assert torch.allclose(val_images[1, 0], torch.full((24, 24), expected), atol=1e-5)
    # Worker processes give the same batches as the main process for the same seed and epoch.
    with_workers = load_data("imagefolder", root, batch_size=4, input_size=24, workers=1)
    assert torch.equal(_all(with_workers.val)[0], val_images)


def test_imagefolder_errors_name_the_problem(tmp_path):
    with pytest.raises(InvalidInput, match=r"imagefolder needs .*train/ with one folder per class"):
        load_data("imagefolder", tmp_path / "nowhere")
    root = write_imagefolder(tmp_path / "mismatch")
    write_image(root / "train" / "owl" / "0.png", 5)
    with pytest.raises(InvalidInput, match="train/ and val/ hold different classes .*owl"):
        load_data("imagefolder", root, workers=0)
    empty = tmp_path / "empty"
    (empty / "train" / "a").mkdir(parents=True)
    (empty / "val" / "a").mkdir(parents=True)
    with pytest.raises(InvalidInput, match="imagefolder at .*empty"):
        load_data("imagefolder", empty, workers=0)


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_reads_the_python_batch_files(tmp_path, name, classes):
    directory = write_cifar(tmp_path, name)
    data = load_data(name, tmp_path, batch_size=8)
    assert (data.num_classes, data.num_train, data.num_val, data.input_size) == (classes, 20, 10, 32)
    with open(directory / ("test_batch" if name == "cifar10" else "test"), "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    images, labels = _all(data.val)
    assert labels.tolist() == list(raw[b"labels" if name == "cifar10" else b"fine_labels"])
    pixels = torch.from_numpy(raw[b"data"]).reshape(-1, 3, 32, 32).float() / 255
    mean = torch.tensor(data.val.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.val.std).view(1, 3, 1, 1)
    assert torch.allclose(images, (pixels - mean) / std, atol=1e-5)
    # The folder itself is accepted as the root too.
    assert load_data(name, directory, batch_size=8).num_train == 20


def test_cifar_missing_or_corrupt_is_bad_input(tmp_path):
    with pytest.raises(InvalidInput, match=r"cifar10 not found: expected .*cifar-10-batches-py/ holding "
                                           r"data_batch_1.*--data-root DIR"):
        load_data("cifar10", tmp_path)
    directory = write_cifar(tmp_path, "cifar10")
    (directory / "data_batch_3").write_bytes(b"\x80\x04 not a pickle")
    with pytest.raises(InvalidInput, match="corrupt cifar10 file .*data_batch_3"):
        load_data("cifar10", tmp_path)
    with open(directory / "data_batch_3", "wb") as handle:  # a pickle that would run code is refused
        pickle.dump({b"data": __import__("os").system}, handle)
    with pytest.raises(InvalidInput, match="corrupt cifar10 file .*unexpected object"):
        load_data("cifar10", tmp_path)


def test_fake_is_labelled_synthetic_and_sized_as_asked():
    data = load_data("fake", batch_size=4, input_size=32, workers=0, num_classes=7, fake_size=8)
    assert data.synthetic and "SYNTHETIC" in data.describe()
    images, labels = _all(data.train)
    assert images.shape == (8, 3, 32, 32) and labels.max() < 7 and data.num_classes == 7


def test_bad_names_and_class_counts():
    with pytest.raises(InvalidInput, match="unknown dataset 'mnist'; valid: digits, cifar10, cifar100, imagefolder, "
                                           "fake, mnist5k, cluttered-mnist"):
        load_data("mnist")
    with pytest.raises(InvalidInput, match="dataset digits has 10 classes but --num-classes is 12"):
        load_data("digits", num_classes=12)


def test_dataset_info_checks_without_loading_and_train_limit_subsets(tmp_path):
    info = dataset_info("imagefolder", write_imagefolder(tmp_path / "folder", classes=("a", "b")))
    assert (info.num_classes, info.input_size, info.small_input) == (2, 224, False)
    assert dataset_info("fake", num_classes=7).num_classes == 7
    assert dataset_info("digits", input_size=48).input_size == 48
    with pytest.raises(InvalidInput, match="imagefolder at .*train/ holds no class folders"):
        (tmp_path / "bare" / "train").mkdir(parents=True)
        (tmp_path / "bare" / "val").mkdir()
        dataset_info("imagefolder", tmp_path / "bare")


def _class_counts(labels) -> dict[int, int]:
    return dict(sorted(Counter(torch.as_tensor(labels).tolist()).items()))


def test_train_limit_is_a_fixed_class_stratified_subset(tmp_path):
    full = load_data("digits", batch_size=50)
    limited = load_data("digits", batch_size=50, train_limit=120)
    assert (limited.num_train, len(limited.train), limited.num_val) == (120, 3, 359)
    sizes = _class_counts(full.train.labels)
    counts = _class_counts(limited.train.labels)
    assert sum(counts.values()) == 120 and set(counts) == set(range(10))
    assert all(abs(counts[c] - 120 * sizes[c] / 1438) < 1 for c in range(10)), counts  # proportional, to one image
    # The same images whatever the training seed (every trial and seed of a run trains on one subset) ...
    other_seed = load_data("digits", batch_size=50, train_limit=120, seed=7)
    assert torch.equal(other_seed.train.images, limited.train.images)
    # ... and each of them is one of the full split's images.
    full_rows = {tuple(row.tolist()) for row in full.train.images.flatten(1)}
    assert all(tuple(row.tolist()) in full_rows for row in limited.train.images.flatten(1))

    # ImageFolder: 4 images in each of 3 classes, 6 kept: 2 per class (the first 6 files would be 4 + 2 + 0).
    folder = write_imagefolder(tmp_path / "folder", classes=("a", "b", "c"), per_class=4)
    subset = load_data("imagefolder", folder, workers=0, train_limit=6).train.loader.dataset.dataset
    assert _class_counts([subset.dataset.targets[i] for i in subset.indices]) == {0: 2, 1: 2, 2: 2}
    # CIFAR with unequal classes: 10, 10 and 20 images of classes 0, 1, 2; 20 kept: 5, 5 and 10.
    write_cifar(tmp_path, "cifar100", labels=[0] * 10 + [1] * 10 + [2] * 20)
    cifar = load_data("cifar100", tmp_path, train_limit=20)
    assert _class_counts(cifar.train.labels) == {0: 5, 1: 5, 2: 10}


def test_a_data_file_missing_from_its_package_names_what_to_install():
    from ulsam_search.data.registry import package_file

    assert package_file("sklearn", "datasets/data/digits.csv.gz", "the digits data").name == "digits.csv.gz"
    with pytest.raises(InvalidInput, match=r"^the digits data ships inside the sklearn package: pip install "
                                           r"scikit-learn \(nothing is downloaded at run time\)$"):
        package_file("sklearn", "datasets/data/no-such-file.csv.gz", "the digits data", "scikit-learn")
    with pytest.raises(InvalidInput, match="pip install no_such_package_here"):
        package_file("no_such_package_here", "data.csv", "the data")
