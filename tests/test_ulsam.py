"""ULSAM against a per-subspace loop written here from docs/paper.md's definition, with the official key names."""

import copy

import pytest
import torch
import torch.nn.functional as F

from ulsam_search import ULSAM, OfficialULSAM, convert_official_state_dict, create_attention
from ulsam_search.errors import InvalidInput


def official_state(m: int, g: int) -> dict[str, torch.Tensor]:
    """Random weights and running statistics under the official module's keys, in float64."""
    size = m // g
    state = {}
    for i in range(g):
        p = f"subspaces.{i}."
        state[p + "conv_dws.weight"] = torch.randn(size, 1, 1, 1)
        state[p + "conv_dws.bias"] = torch.randn(size)
        state[p + "conv_point.weight"] = torch.randn(1, size, 1, 1)
        state[p + "conv_point.bias"] = torch.randn(1)
        for bn, c in (("bn_dws", size), ("bn_point", 1)):
            state[p + f"{bn}.weight"] = torch.rand(c) + 0.5
            state[p + f"{bn}.bias"] = torch.rand(c) - 0.5
            state[p + f"{bn}.running_mean"] = torch.rand(c) - 0.5
            state[p + f"{bn}.running_var"] = torch.rand(c) + 0.5
            state[p + f"{bn}.num_batches_tracked"] = torch.tensor(3)
    return {k: v.double() if v.is_floating_point() else v for k, v in state.items()}


def loop_ulsam(x, state, g, training, momentum):
    """docs/paper.md, step by step, one subspace at a time: dw 1x1 conv, BN, ReLU, max-pool 3x3, pw 1x1 conv to one
    channel, BN, ReLU, softmax over positions, F * A + F; subspaces concatenated."""
    outs = []
    for i, f in enumerate(torch.chunk(x, g, dim=1)):
        p = f"subspaces.{i}."
        y = F.conv2d(f, state[p + "conv_dws.weight"], state[p + "conv_dws.bias"], groups=f.shape[1])
        y = F.batch_norm(y, state[p + "bn_dws.running_mean"], state[p + "bn_dws.running_var"],
                         state[p + "bn_dws.weight"], state[p + "bn_dws.bias"], training, momentum, 1e-5)
        y = F.max_pool2d(F.relu(y), 3, 1, 1)
        y = F.conv2d(y, state[p + "conv_point.weight"], state[p + "conv_point.bias"])
        y = F.batch_norm(y, state[p + "bn_point.running_mean"], state[p + "bn_point.running_var"],
                         state[p + "bn_point.weight"], state[p + "bn_point.bias"], training, momentum, 1e-5)
        y = F.relu(y)
        n, _, h, w = y.shape
        attn = torch.softmax(y.view(n, 1, h * w), dim=2).view(n, 1, h, w)
        outs.append(attn.expand_as(f) * f + f)
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("g", [1, 2, 4, 8, 16, 32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_matches_loop_forward_backward_and_running_stats(g, training, fused):
    m, momentum = 64, 0.9
    state = official_state(m, g)
    module = ULSAM(m, g, bn_momentum=momentum, fused=fused).double().train(training)
    module.load_state_dict(convert_official_state_dict(state))
    params = {k: v.clone().requires_grad_(k.endswith(("weight", "bias"))) for k, v in state.items()}
    x = (torch.randn(3, m, 9, 7, dtype=torch.float64) * 2 + 0.3)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad_out = torch.randn_like(x)

    expected = loop_ulsam(x_ref, params, g, training, momentum)
    actual = module(x_ours)
    (expected * grad_out).sum().backward()
    (actual * grad_out).sum().backward()

    assert actual.shape == x.shape
    assert (actual - expected).abs().max() <= 1e-5
    assert (x_ours.grad - x_ref.grad).abs().max() <= 1e-5
    expected_grads = convert_official_state_dict({k: v.grad for k, v in params.items() if v.grad is not None})
    for name, p in module.named_parameters():
        assert (p.grad - expected_grads[name]).abs().max() <= 1e-5, name
    expected_buffers = convert_official_state_dict({k: v.detach() for k, v in params.items()})
    for name, b in module.named_buffers():
        if b.is_floating_point():
            assert (b - expected_buffers[name]).abs().max() <= 1e-5, name
    assert int(module.bn_dw.num_batches_tracked) == (4 if training else 3)


@pytest.mark.parametrize("training", [True, False])
def test_official_structure_checkpoint_converts_to_the_same_function(training):
    official = OfficialULSAM(96, 8).double().train(training)  # official momentum 0.9
    for bn in (m for m in official.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
        torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    ours = ULSAM(96, 8, bn_momentum=0.9).double().train(training)
    ours.load_state_dict(convert_official_state_dict(official.state_dict()), strict=True)
    x = torch.randn(2, 96, 7, 7, dtype=torch.float64)
    assert (official(x) - ours(x)).abs().max() <= 1e-10
    converted = convert_official_state_dict(official.state_dict())
    assert all(torch.allclose(converted[k], v, atol=1e-10) for k, v in ours.state_dict().items())  # running stats


def test_float32_matches_float64_closely():
    module = ULSAM(96, 8).train()
    x = torch.randn(4, 96, 14, 14)
    reference = ULSAM(96, 8).double().train()
    reference.load_state_dict(module.state_dict())
    assert (module(x).double() - reference(x.double())).abs().max() <= 1e-5


def test_output_is_input_times_one_plus_a_per_subspace_softmax():
    module = ULSAM(16, 4).eval()
    x = torch.randn(2, 16, 5, 5)
    ratio = (module(x) / x - 1).view(2, 4, 4, 25)
    assert torch.allclose(ratio, ratio[:, :, :1].expand_as(ratio), atol=1e-5)  # one map per subspace
    assert torch.allclose(ratio[:, :, 0].sum(-1), torch.ones(2, 4), atol=1e-5)  # a softmax over positions


def test_parameter_count_is_5m_plus_3g():
    assert sum(p.numel() for p in ULSAM(512, 1).parameters()) == 2563
    assert sum(p.numel() for p in ULSAM(96, 4).parameters()) == 5 * 96 + 3 * 4


def test_official_momentum_is_an_option_and_default_is_pytorchs():
    assert ULSAM(8, 2).bn_dw.momentum == 0.1
    assert ULSAM(8, 2, bn_momentum=0.9).bn_pw.momentum == 0.9


def test_fused_path_under_bf16_autocast_computes_in_float32():
    """Under autocast the fused function turns autocast off and computes in float32 (its matmul would run in bf16)."""
    torch.manual_seed(0)
    plain = ULSAM(32, 4).train()
    autocast = copy.deepcopy(plain)
    for x in (torch.randn(4, 32, 7, 7), torch.randn(4, 32, 7, 7).bfloat16()):
        x_plain, x_autocast = x.clone().requires_grad_(), x.clone().requires_grad_()
        expected = plain(x_plain)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = autocast(x_autocast)
        assert y.dtype == x.dtype
        weights = torch.randn_like(y, dtype=torch.float32)
        (expected.float() * weights).sum().backward()
        (y.float() * weights).sum().backward()
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
        torch.testing.assert_close(x_autocast.grad, x_plain.grad, rtol=0, atol=0)
        for (name, p), q in zip(plain.named_parameters(), autocast.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=name)
        for p, q in zip(plain.buffers(), autocast.buffers()):
            torch.testing.assert_close(q, p, rtol=0, atol=0)


def test_torchscript_and_torch_compile_paths_agree_with_eager():
    module = ULSAM(32, 4).eval()
    x = torch.randn(2, 32, 7, 7)
    eager = module(x)
    assert torch.allclose(torch.jit.script(module)(x), eager, atol=1e-5)
    compiled = torch.compile(module, backend="eager", fullgraph=True)  # dynamo tracing, no graph break
    assert torch.allclose(compiled(x), eager, atol=1e-5)


def test_bad_groups_is_rejected():
    with pytest.raises(ValueError, match="groups=3 must divide channels=32"):
        ULSAM(32, 3)


def test_attention_factory_builds_by_name():
    layer = create_attention("ulsam", 96, groups=8)
    assert isinstance(layer, ULSAM) and layer.groups == 8 and layer.channels == 96
    with pytest.raises(InvalidInput, match="unknown attention 'foo'; valid: ulsam"):
        create_attention("foo", 8)


def test_import_has_no_global_side_effects():
    import subprocess
    import sys

    code = "import torch; import ulsam_search; print(torch.get_default_dtype(), torch.empty(1).device)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["torch.float32", "cpu"]
