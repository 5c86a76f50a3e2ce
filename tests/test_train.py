import math
from dataclasses import asdict, replace

import pytest
import torch
import torchvision
from torch import nn

from ulsam_search import build_model
from ulsam_search.data import DataBundle, TensorBatches, load_data
from ulsam_search.errors import InvalidInput
from layouts import write_image, write_imagefolder
from ulsam_search.train import (TrainConfig, TrainingDiverged, WarmupCosine, evaluate, fit,
                                load_checkpoint, load_pretrained, make_optimizer, seed_everything)
from ulsam_search.train.checkpoints import restore as _restore

TINY = "mobilenet_v1@0.25"


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", batch_size=64)


@pytest.fixture(scope="module")
def digits_subset(digits):
    """The first 256 training images (4 batches) and 128 validation images: quick runs."""
    train, val = digits.train, digits.val
    return DataBundle("digits", TensorBatches(train.images[:256], train.labels[:256], 64, mean=train.mean,
                                              std=train.std, train=True, pad=train.pad, seed=0),
                      TensorBatches(val.images[:128], val.labels[:128], 64, mean=val.mean, std=val.std),
                      10, 32, 256, 128)


class _Fixed(list):
    """The same batches every epoch."""

    def set_epoch(self, epoch):
        pass


def _model(arch=TINY, seed=0):
    seed_everything(seed)
    return build_model(arch, 10, small_input=True)


def _numbers(history):
    """Everything an epoch measured except its timings."""
    return [{k: v for k, v in asdict(m).items() if k not in ("train_seconds", "images_per_second", "checkpoint")}
            for m in history]


@pytest.mark.slow
def test_mobilenet_v2_035_reaches_90_percent_on_digits(digits):
    result = fit(_model("mobilenet_v2@0.35"), digits, TrainConfig(epochs=4, lr=0.05))
    assert result.final.top1 >= 90.0, [m.top1 for m in result.history]
    assert result.final.top5 >= 99.0
    assert result.history[-1].train_loss < result.history[0].train_loss - 1.0
    assert result.images_per_second > 0 and result.device == "cpu"


@pytest.mark.slow
def test_ulsam_variant_trains_and_its_attention_learns(digits):
    model = _model("mobilenet_v2@0.35:12=4,15+4")
    replaced, inserted = model.features[12], model.features[15].attn
    before = [replaced.conv_pw.weight.clone(), inserted.conv_dw.weight.clone()]
    result = fit(model, digits, TrainConfig(epochs=3, lr=0.05))
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.final.top1 >= 50.0, [m.top1 for m in result.history]  # chance: 10%
    assert not torch.equal(before[0], replaced.conv_pw.weight) and not torch.equal(before[1], inserted.conv_dw.weight)


@pytest.mark.slow
def test_same_seed_same_numbers_and_resume_matches_an_uninterrupted_run(digits_subset, tmp_path):
    config = TrainConfig(epochs=3, lr=0.05)
    straight = fit(_model(), digits_subset, config)

    class Killed(Exception):
        pass

    def die_after_first(metrics):
        if metrics.epoch == 1:
            raise Killed

    path = tmp_path / "checkpoint.pt"
    with pytest.raises(Killed):
        fit(_model(), digits_subset, config, checkpoint_path=path, callback=die_after_first)
    state = load_checkpoint(path)
    assert [m["epoch"] for m in state["history"]] == [1] and state["arch"] == TINY
    resumed = fit(_model(seed=99), digits_subset, config, checkpoint_path=path, resume=state)
    assert _numbers(resumed.history) == _numbers(straight.history)
    other_seed = fit(_model(seed=1), digits_subset, replace(config, seed=1, epochs=1))
    assert _numbers(other_seed.history)[0] != _numbers(straight.history)[0]
    with pytest.raises(InvalidInput, match=r"cannot resume: the checkpoint was trained with lr=0.05 \(now 0.1\)"):
        fit(_model(), digits_subset, replace(config, lr=0.1), resume=state)


def test_a_cpu_run_on_a_host_with_gpus_never_touches_their_generators(digits_subset, tmp_path, monkeypatch):
    """Saving every visible GPU's RNG state (``get_rng_state_all``) started a CUDA context on each of them for a
    CPU run, and a resume on a host with fewer GPUs failed; a CPU checkpoint holds no CUDA state."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a CPU run touched the CUDA generators")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in ("get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all"):
        monkeypatch.setattr(torch.cuda, name, forbidden)
    config = TrainConfig(epochs=2, device="cpu")
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), digits_subset, config, checkpoint_path=path, callback=lambda m: _interrupt())
    state = load_checkpoint(path)
    assert state["cuda_rng"] is None
    assert fit(_model(), digits_subset, config, checkpoint_path=path, resume=state).final.epoch == 2


def _interrupt():
    raise KeyboardInterrupt


def test_auto_precision_takes_bf16_only_where_the_gpu_has_it_in_hardware(monkeypatch):
    from ulsam_search.train import autocast_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)  # true under emulation too
    for capability, expected in (((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert autocast_dtype("auto", torch.device("cuda")) == expected, capability
    assert autocast_dtype("auto", torch.device("cpu")) is None


def test_callback_sees_every_epoch_and_the_checkpoint_it_can_report(digits_subset, tmp_path):
    seen = []
    path = tmp_path / "ck.pt"
    fit(_model(), digits_subset, TrainConfig(epochs=2, warmup_epochs=0.5), checkpoint_path=path,
        callback=lambda m: seen.append((m.epoch, m.checkpoint, load_checkpoint(m.checkpoint)["history"][-1]["epoch"])))
    assert seen == [(1, str(path), 1), (2, str(path), 2)]
    assert not list(path.parent.glob(".*.tmp"))


def test_non_finite_loss_stops_with_epoch_and_step(digits_subset):
    images, labels = next(iter(digits_subset.val))
    batches = [(images, labels)] * 5
    batches[2] = (torch.full_like(images, float("nan")), labels)

    data = DataBundle("poisoned", _Fixed(batches), digits_subset.val, 10, 32, 320, 128)
    with pytest.raises(TrainingDiverged, match="loss nan at epoch 1, step 3; lower the learning rate") as caught:
        fit(_model(), data, TrainConfig(epochs=2))
    assert (caught.value.epoch, caught.value.step) == (1, 3)


def test_bf16_autocast_runs_on_cpu(digits_subset):
    model = _model()
    dtypes = set()
    model.features[0].register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))
    result = fit(model, digits_subset, TrainConfig(epochs=1, amp="bf16"))
    assert torch.bfloat16 in dtypes and math.isfinite(result.final.train_loss)
    assert next(model.parameters()).dtype == torch.float32  # master weights stay fp32
    with pytest.raises(InvalidInput, match="amp fp16 needs CUDA"):
        fit(_model(), digits_subset, TrainConfig(epochs=1, amp="fp16"))


def test_evaluate_counts_top1_and_top5_exactly():
    logits = torch.tensor([[9., 1, 2, 3, 4, 5, 0], [0., 9, 1, 2, 3, 4, 5], [5., 4, 3, 2, 1, 0, 9]])
    labels = torch.tensor([0, 6, 5])  # hit, in top-5, miss
    loss, top1, top5 = evaluate(nn.Identity(), [(logits, labels)])
    assert (top1, top5) == pytest.approx((100 / 3, 200 / 3))
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, labels).item())
    _, top1, top2 = evaluate(nn.Identity(), [(logits[:, :2], torch.tensor([0, 0, 1]))])  # 2 classes: top-2
    assert (top1, top2) == pytest.approx((100 / 3, 100.0))


def test_schedule_and_weight_decay_groups():
    schedule = WarmupCosine(warmup_steps=4, total_steps=14, min_ratio=0.1)
    assert [schedule(s) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert schedule(9) == pytest.approx(0.55) and schedule(14) == pytest.approx(0.1)
    model = _model("mobilenet_v2@0.35:15+4")
    decay, no_decay = make_optimizer(model, TrainConfig()).param_groups
    assert decay["weight_decay"] == 4e-5 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith("weight") and p.ndim == 4 or p.ndim == 2 for p in decay["params"])
    assert {"features.15.attn.bn_pw.weight", "features.15.attn.conv_dw.bias", "classifier.1.bias"} <= {
        names[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_pretrained_torchvision_weights_fill_the_surviving_blocks(tmp_path):
    source = torchvision.models.mobilenet_v2(width_mult=0.35).state_dict()
    path = tmp_path / "tv.pth"
    torch.save({f"module.{k}": v for k, v in source.items()}, path)  # as DataParallel saves it
    model = build_model("mobilenet_v2@0.35:12=4,15+4", 10, small_input=True)
    report = load_pretrained(model, path)
    block12 = {k for k in source if k.startswith("features.12.")}
    assert set(report.skipped) == block12 | {"classifier.1.weight", "classifier.1.bias"}
    assert len(report.loaded) == len(source) - len(block12) - 2
    assert all(k.startswith(("features.12.", "features.15.attn.", "classifier.1.")) for k in report.missing)
    assert torch.equal(model.state_dict()["features.16.conv.1.0.weight"], source["features.16.conv.1.0.weight"])


def test_pretrained_and_checkpoint_errors(tmp_path):
    model = build_model(TINY, 10, small_input=True)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"definitely not a torch file")
    with pytest.raises(InvalidInput, match="cannot read pretrained weights .*garbage.pt"):
        load_pretrained(model, garbage)
    with pytest.raises(InvalidInput, match="cannot read checkpoint .*garbage.pt"):
        load_checkpoint(garbage)
    unrelated = tmp_path / "unrelated.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, unrelated)
    with pytest.raises(InvalidInput, match="no tensor in .*unrelated.pt matches the model"):
        load_pretrained(model, unrelated)
    with pytest.raises(InvalidInput, match="is not a ulsam-search training checkpoint"):
        load_checkpoint(unrelated)
    with pytest.raises(InvalidInput, match="pretrained weights .*missing.pt does not exist"):
        load_pretrained(model, tmp_path / "missing.pt")


@pytest.mark.slow
def test_torch_compile_trains_the_same_function(digits_subset):
    """Inductor on CPU (needs a C compiler, as CI has): compiled and eager runs agree to float32 noise.

    Without dropout (inductor draws its masks from another generator). A freshly initialised small-input MobileNet
    is ill-conditioned: eager float32 gradients already differ from float64 ones by 0.5% (2.5% in channels_last),
    so two steps apart the losses agree to ~1e-3, not to 1e-6.
    """
    two_batches = DataBundle("digits", _Fixed(digits_subset.val), digits_subset.val, 10, 32, 128, 128)
    models = []
    for _ in range(2):
        seed_everything(0)
        models.append(build_model("mobilenet_v1@0.25:13+2", 10, small_input=True, dropout=0.0))
    eager = fit(models[0], two_batches, TrainConfig(epochs=1))
    compiled = fit(models[1], two_batches, TrainConfig(epochs=1, compile=True))
    assert compiled.final.train_loss == pytest.approx(eager.final.train_loss, rel=1e-2)
    assert compiled.final.val_loss == pytest.approx(eager.final.val_loss, rel=1e-2)


def test_gradient_clipping_bounds_the_update_and_adamw_trains(digits_subset):
    def moved(config):
        model = _model()
        start = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        result = fit(model, digits_subset, config)
        return (torch.cat([p.detach().flatten() for p in model.parameters()]) - start).norm().item(), result

    free, _ = moved(TrainConfig(epochs=1, warmup_epochs=0))
    clipped, _ = moved(TrainConfig(epochs=1, warmup_epochs=0, grad_clip=1e-3))
    # 4 steps of lr <= 0.05 on a gradient of norm <= 1e-3, momentum 0.9 (Nesterov) amplifying each by < 2 / (1 - 0.9);
    # the weight decay adds lr * 4e-5 * |w| per step.
    assert clipped < 4 * 0.05 * 1e-3 * 20 + 4 * 0.05 * 4e-5 * 100 < free / 10
    adam_moved, adam = moved(TrainConfig(epochs=1, optimizer="adamw", lr=1e-3, weight_decay=0.05))
    assert adam_moved > 0 and math.isfinite(adam.final.val_loss)
    optimizer = make_optimizer(_model(), TrainConfig(optimizer="adamw", weight_decay=0.05))
    assert isinstance(optimizer, torch.optim.AdamW) and [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0]


def test_resume_through_dataloader_workers_matches_an_uninterrupted_run(tmp_path):
    """ImageFolder with 2 persistent workers: random crops and flips are drawn in the workers, so a resumed run
    (new workers, started at epoch 2) must draw what the uninterrupted run's workers drew in their second epoch."""
    root = write_imagefolder(tmp_path / "images", classes=("a", "b", "c", "d"), per_class=12, size=(20, 24))
    for image in sorted(root.rglob("*.png"))[::3]:  # images that differ within a class: crops change the pixels
        write_image(image, (37 * len(image.name)) % 256, (20, 24))
        write_image(image.with_name("x" + image.name), 200, (20, 24))
    data = lambda: load_data("imagefolder", root, batch_size=16, input_size=16, workers=2)  # noqa: E731
    config = TrainConfig(epochs=2, lr=0.05, warmup_epochs=0)
    straight = fit(_model(), data(), config)

    class Killed(Exception):
        pass

    def die_after_first(metrics):
        if metrics.epoch == 1:
            raise Killed

    path = tmp_path / "checkpoint.pt"
    with pytest.raises(Killed):
        fit(_model(), data(), config, checkpoint_path=path, callback=die_after_first)
    resumed = fit(_model(seed=5), data(), config, resume=load_checkpoint(path))
    assert _numbers(resumed.history) == _numbers(straight.history)


def test_an_fp32_checkpoint_resumes_with_a_gradient_scaler_and_an_fp16_one_without(digits_subset, tmp_path):
    path = tmp_path / "checkpoint.pt"
    fit(_model(), digits_subset, TrainConfig(epochs=1), checkpoint_path=path)
    fp32 = load_checkpoint(path)
    assert fp32["scaler"] == {}  # a disabled scaler has no state
    model = _model()
    optimizer = make_optimizer(model, TrainConfig())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=True)  # what --amp fp16 builds
    _restore(fp32, TrainConfig(epochs=1, amp="fp16"), model, optimizer, scheduler, scaler)
    assert scaler.get_scale() == 65536.0  # fresh, not "source state dict is empty"
    fp16 = {**fp32, "scaler": scaler.state_dict()}
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    _restore(fp16, TrainConfig(epochs=1), _model(), optimizer, scheduler, disabled)
    assert not disabled.is_enabled()
