"""A new attention type is one file: it registers, parses in ARCH strings, builds, and is counted by its own rule."""

import importlib.util

import pytest
import torch

from ulsam_search import build_model, count_cost
from ulsam_search.errors import InvalidInput
from ulsam_search.models import Architecture, list_attentions
from ulsam_search.models.attention import registry

# The whole of a new type, as a contributor would write it (squeeze-and-excitation; g is the reduction ratio).
SCRATCH_TYPE = '''
from torch import nn

from ulsam_search.models.attention import AttentionType, register_attention


class SqueezeExcite(nn.Module):
    def __init__(self, channels, groups=4):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // groups, 1), nn.ReLU(),
                                  nn.Conv2d(channels // groups, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.gate(x)


def se_cost(module, channels, height, width, convention):
    hidden = module.gate[1].out_channels
    return 2 * channels * hidden + channels * height * width, 2 * channels * hidden


register_attention(AttentionType("se", SqueezeExcite, {"insert"}, se_cost))
'''


@pytest.fixture
def scratch_type(tmp_path, monkeypatch):
    """Import the scratch file into a copy of the registry, so that no other test sees "se"."""
    monkeypatch.setattr(registry.ATTENTIONS, "_entries", dict(registry.ATTENTIONS._entries))
    path = tmp_path / "scratch_se.py"
    path.write_text(SCRATCH_TYPE)
    spec = importlib.util.spec_from_file_location("scratch_se", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_type_in_one_file_registers_parses_builds_and_is_counted_by_its_rule(scratch_type):
    assert list_attentions() == ["ulsam", "se"]
    arch = Architecture.parse("mobilenet_v2:12+se4,15=4")
    assert [(p.block, p.op, p.attention, p.groups) for p in arch.placements] == [
        (12, "insert", "se", 4), (15, "replace", "ulsam", 4)]
    assert str(arch) == "mobilenet_v2:12+se4,15=4" and Architecture.parse(str(arch)) == arch

    model = build_model(arch, num_classes=10).eval()
    assert isinstance(model.features[12].attn, scratch_type.SqueezeExcite)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)

    # Block 12 of MobileNet-V2 at 224: 96 channels on 14 x 14; g=4 gives 24 hidden channels. The rule's figures, by
    # hand: MACs 2*96*24 + 96*14*14 = 23,424, params 2*96*24 = 4,608 (thop would also count the 1x1 convs' MACs).
    with_se, without = count_cost(arch), count_cost("mobilenet_v2:15=4")
    assert (with_se.macs - without.macs, with_se.params - without.params) == (23_424, 4_608)


def test_a_role_the_type_lacks_and_a_second_registration_are_refused(scratch_type):
    with pytest.raises(InvalidInput, match="attention 'se' cannot replace block 12; its roles: insert"):
        Architecture.parse("mobilenet_v2:12=se4")
    with pytest.raises(ValueError, match="attention 'se' is already registered"):
        registry.register_attention(registry.get_attention("se"))
    with pytest.raises(InvalidInput, match="unknown attention 'eca'; valid: ulsam, se"):
        Architecture.parse("mobilenet_v2:12+eca4")


def test_without_the_file_the_name_is_unknown():
    assert list_attentions() == ["ulsam"]
    with pytest.raises(InvalidInput, match="unknown attention 'se'; valid: ulsam"):
        Architecture.parse("mobilenet_v2:12+se4")
