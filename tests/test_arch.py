import pytest
import torch
import torchvision

from ulsam_search import ULSAM, Architecture, Placement, build_model, load_matching_state_dict
from ulsam_search.errors import InvalidInput


@pytest.mark.parametrize("text, canonical", [
    ("mobilenet_v2", "mobilenet_v2"),
    ("mobilenet_v2@1.0", "mobilenet_v2"),
    ("mobilenet_v2:15=4,12=4", "mobilenet_v2:12=4,15=4"),
    ("mobilenet_v1@0.75:9=1", "mobilenet_v1@0.75:9=1"),
    ("mobilenet_v1:13+8", "mobilenet_v1:13+8"),
    (" mobilenet_v2@0.35:3+2,16=8 ", "mobilenet_v2@0.35:3+2,16=8"),
])
def test_parse_canonical_round_trip(text, canonical):
    arch = Architecture.parse(text)
    assert str(arch) == canonical
    assert Architecture.parse(str(arch)) == arch
    assert hash(Architecture.parse(canonical)) == hash(arch)


def test_fields_and_choices():
    arch = Architecture.parse("mobilenet_v1@0.5:13+8,9=1")
    assert (arch.backbone, arch.width) == ("mobilenet_v1", 0.5)
    assert arch.placements == (Placement(9, "replace", 1), Placement(13, "insert", 8))
    assert arch.choices()[9] == "=1" and arch.choices()[13] == "+8" and arch.choices()[1] == "none"
    assert str(arch.baseline) == "mobilenet_v1@0.5"


@pytest.mark.parametrize("text, message", [
    ("", "malformed ARCH ''"),
    ("mobilenet v2", "malformed ARCH 'mobilenet v2'"),
    ("resnet50", "unknown backbone 'resnet50'; valid: mobilenet_v1, mobilenet_v2"),
    ("mobilenet_v1@0.3", "width 0.3 is not available for mobilenet_v1; valid widths: 0.25, 0.5, 0.75, 1"),
    ("mobilenet_v2@big", "malformed width 'big'"),
    ("mobilenet_v2:12x4", "malformed placement '12x4'"),
    ("mobilenet_v2:12=", "malformed placement '12='"),
    ("mobilenet_v2:18+4", "block 18 out of range for mobilenet_v2; valid blocks: 1..17"),
    ("mobilenet_v1:0+4", "block 0 out of range for mobilenet_v1; valid blocks: 1..13"),
    ("mobilenet_v2:2=4", "block 2 of mobilenet_v2 cannot be replaced (stride 2, 16->24 channels); replaceable "
                         "blocks: 3, 5, 6, 8, 9, 10, 12, 13, 15, 16"),
    ("mobilenet_v2:12=5", "g=5 does not divide the 96 channels at block 12 of mobilenet_v2; valid g: 1, 2, 3, 4, 6,"),
    ("mobilenet_v2:12=0", "g=0 does not divide"),
    ("mobilenet_v2:12=4,12+4", "block 12 is placed twice"),
])
def test_bad_arch_names_the_token_and_valid_choices(text, message):
    with pytest.raises(InvalidInput) as error:
        Architecture.parse(text)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_insert_and_replace_build_the_right_modules():
    model = build_model("mobilenet_v2:12=4,16+8", num_classes=10)
    assert isinstance(model.features[12], ULSAM) and model.features[12].groups == 4
    assert isinstance(model.features[16].attn, ULSAM) and model.features[16].attn.channels == 160
    assert isinstance(model.features[13].attn, torch.nn.Identity)
    assert len(model.features) == 19
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert str(model.arch) == "mobilenet_v2:12=4,16+8"


def test_replace_changes_the_function_insert_applies_ulsam_to_the_block_output():
    plain = build_model("mobilenet_v1@0.25", num_classes=5, small_input=True).eval()
    inserted = build_model("mobilenet_v1@0.25:7+4", num_classes=5, small_input=True).eval()
    load_matching_state_dict(inserted, plain.state_dict())
    x = torch.randn(1, 3, 32, 32)
    block_in = plain.features[:7](x)
    expected = inserted.features[7].attn(plain.features[7](block_in))
    assert torch.allclose(inserted.features[:8](x), expected, atol=1e-6)


def test_torchvision_weights_load_into_surviving_blocks():
    weights = torchvision.models.mobilenet_v2().state_dict()
    model = build_model("mobilenet_v2:12=4,15=4,16+4")
    report = load_matching_state_dict(model, weights)
    assert report.skipped and all(k.startswith(("features.12.", "features.15.")) for k in report.skipped)
    assert all(k.startswith(("features.12.", "features.15.", "features.16.attn.")) for k in report.missing)
    assert len(report.loaded) == len(weights) - len(report.skipped)
    assert torch.equal(model.features[13].conv[0][0].weight, weights["features.13.conv.0.0.weight"])
    assert report.summary().startswith(f"loaded {len(report.loaded)} tensors")
