import pytest
import torch
from thop import profile
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ulsam_search import ULSAM, OfficialULSAM, build_model, count_cost, count_model, measure_latency
from ulsam_search.cost import _cached_cost
from ulsam_search.models.attention.ulsam import ulsam_macs
from ulsam_search.errors import InvalidInput


def test_paper_baselines_at_224():
    v2, v1 = count_cost("mobilenet_v2"), count_cost("mobilenet_v1")
    assert v2.macs == 300_774_272 and round(v2.params / 1e6, 1) == 3.5
    assert v1.macs == 568_740_352 and round(v1.params / 1e6, 1) == 4.2
    assert v2.flops == 2 * v2.macs
    assert count_cost("mobilenet_v2", convention="full").params == 3_504_872


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v2:12=4,15=8,16+2", "mobilenet_v1@0.5:9=1,13+16"])
def test_conv_and_linear_part_matches_torch_flop_counter(arch):
    model = build_model(arch).eval()
    ulsam_shapes = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: ulsam_shapes.append(inp[0].shape))
             for m in model.modules() if isinstance(m, ULSAM)]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    per_module = counter.get_flop_counts()
    ulsam_internal = sum(sum(per_module.get(f"MobileNet.{name}", {}).values())
                         for name, m in model.named_modules() if isinstance(m, ULSAM))
    backbone_macs = (counter.get_total_flops() - ulsam_internal) // 2
    rule = sum(ulsam_macs(s[1], 1, s[2], s[3], "paper") for s in ulsam_shapes)
    assert count_cost(arch).macs == backbone_macs + rule


@pytest.mark.parametrize("m, g, h, w", [(512, 1, 14, 14), (160, 16, 7, 7), (96, 4, 14, 14)])
def test_ulsam_rule_against_thop_on_the_unfused_module(m, g, h, w):
    loop = OfficialULSAM(m, g)  # one module per layer, so thop sees every layer
    x = torch.zeros(1, m, h, w)
    convs_only = {nn.BatchNorm2d: lambda *a: None, nn.Softmax: lambda *a: None}
    paper_macs, _ = profile(loop, (x,), custom_ops=convs_only, verbose=False)
    full_macs, _ = profile(loop, (x,), verbose=False)
    assert ulsam_macs(m, g, h, w, "paper") == paper_macs == 2 * m * h * w
    assert ulsam_macs(m, g, h, w, "full") == full_macs + 2 * m * h * w  # + the functional multiply and add
    assert sum(c.weight.numel() for c in loop.modules() if isinstance(c, nn.Conv2d)) == 2 * m


def test_ulsam_costs_in_a_model():
    base, inserted = count_cost("mobilenet_v2"), count_cost("mobilenet_v2:16+4")
    assert inserted.macs - base.macs == 2 * 160 * 7 * 7
    assert inserted.params - base.params == 2 * 160
    full_base, full = count_cost("mobilenet_v2", convention="full"), count_cost("mobilenet_v2:16+4", convention="full")
    assert full.params - full_base.params == 5 * 160 + 3 * 4
    assert full.macs - full_base.macs == ulsam_macs(160, 4, 7, 7, "full")
    # the paper's comparison: ULSAM at m=512, 14x14 costs ~1e3 params and 0.2M FLOPs(=MACs)
    v1 = count_cost("mobilenet_v1:11+1").macs - count_cost("mobilenet_v1").macs
    assert v1 == 2 * 512 * 14 * 14 and round(v1 / 1e6, 1) == 0.2


def test_input_size_and_classes_change_the_count():
    small = count_cost("mobilenet_v2@0.35", input_size=32, num_classes=10, small_input=True)
    assert small.input_size == 32 and small.small_input
    ten, thousand = count_cost("mobilenet_v2", num_classes=10), count_cost("mobilenet_v2")
    assert thousand.macs - ten.macs == 1280 * 990
    assert count_cost("mobilenet_v2", input_size=448).macs > 3.9 * thousand.macs


def test_counting_leaves_the_model_untouched():
    model = build_model("mobilenet_v1@0.25:7=2", num_classes=10, small_input=True).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_model(model, 32, "full")
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and not any(hasattr(m, "total_ops") for m in model.modules())


def test_results_are_cached():
    _cached_cost.cache_clear()
    first = count_cost("mobilenet_v2@0.5:12=4", input_size=64)
    second = count_cost("mobilenet_v2@0.5:12=4", input_size=64)
    assert first is second and _cached_cost.cache_info().hits == 1


def test_bad_convention_and_size():
    with pytest.raises(InvalidInput, match="unknown cost convention 'flops'; valid: paper, full"):
        count_cost("mobilenet_v2", convention="flops")
    with pytest.raises(InvalidInput, match="input size must be a positive integer"):
        count_model(build_model("mobilenet_v1@0.25"), input_size=-1)


def test_measure_latency():
    model = build_model("mobilenet_v2@0.35:12=4", num_classes=10, small_input=True).train()
    latency = measure_latency(model, input_size=32, batch=4, warmup=1, runs=3)
    assert latency.median_ms > 0 and latency.ms_per_image == latency.median_ms / 4
    assert (latency.device, latency.runs) == ("cpu", 3)
    assert model.training


def test_latency_is_timed_as_the_trial_trains_unless_asked_for_fp32():
    from ulsam_search.config import SearchConfig
    from ulsam_search.search.backends.train import latency_runtime

    model = build_model("mobilenet_v2@0.35:12=4", num_classes=10, small_input=True)
    seen = []
    channels_last = torch.channels_last
    model.features[0].register_forward_hook(lambda module, inputs, output: seen.append(
        (output.dtype, inputs[0].is_contiguous(memory_format=channels_last))))
    latency = measure_latency(model, input_size=32, batch=2, warmup=0, runs=2, amp_dtype=torch.bfloat16,
                              channels_last=True)
    assert (latency.precision, latency.layout) == ("bf16", "channels_last") and seen == [(torch.bfloat16, True)] * 2
    seen.clear()
    assert (measure_latency(model, input_size=32, batch=2, warmup=0, runs=1).precision, seen) == (
        "fp32", [(torch.float32, False)])

    def runtime(**settings):
        config = SearchConfig.model_validate({"training": {k: v for k, v in settings.items() if k != "as_trained"},
                                              "latency": {"as_trained": settings.get("as_trained", True)},
                                              "resources": {"gpu": 1 if settings.get("amp") == "fp16" else 0}})
        return latency_runtime(config, "cpu")

    assert runtime() == {"amp_dtype": None, "channels_last": True}  # amp auto is fp32 on CPU
    assert runtime(amp="bf16") == {"amp_dtype": torch.bfloat16, "channels_last": True}
    assert runtime(amp="fp16") == {"amp_dtype": None, "channels_last": True}  # fp16 has no CPU path
    assert runtime(amp="bf16", channels_last=False) == {"amp_dtype": torch.bfloat16, "channels_last": False}
    assert runtime(amp="bf16", as_trained=False) == {"amp_dtype": None, "channels_last": False}
