import pytest
import torch
import torchvision

from ulsam_search import block_table
from ulsam_search.models.backbones import get_backbone
from ulsam_search.models.backbones.mobilenet_v2 import mobilenet_v2


def test_v2_without_ulsam_is_torchvisions_mobilenet_v2():
    ours, theirs = mobilenet_v2(), torchvision.models.mobilenet_v2()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 96, 96)
    assert torch.equal(ours.eval()(x), theirs.eval()(x))
    assert sum(p.numel() for p in ours.parameters()) == 3_504_872


def test_v2_width_follows_torchvision():
    ours, theirs = mobilenet_v2(width=0.35, num_classes=10), torchvision.models.mobilenet_v2(width_mult=0.35,
                                                                                           num_classes=10)
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_v2_block_table_matches_features_and_residual_blocks():
    blocks = block_table("mobilenet_v2")
    assert [b.index for b in blocks] == list(range(1, 18))
    assert [b.index for b in blocks if b.replaceable] == [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]
    model = mobilenet_v2()
    for b in blocks:
        assert model.features[b.index].out_channels == b.c_out
        assert model.features[b.index].use_res_connect == b.replaceable
    assert (blocks[11].c_out, blocks[11].out_size) == (96, 14)
    assert (blocks[14].c_out, blocks[14].out_size) == (160, 7)


def test_v1_block_table_is_designs():
    blocks = block_table("mobilenet_v1")
    assert [(b.c_in, b.c_out, b.stride) for b in blocks] == [
        (32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
        *[(512, 512, 1)] * 5, (512, 1024, 2), (1024, 1024, 1)]
    assert [b.out_size for b in blocks[6:11]] == [14] * 5 and blocks[12].out_size == 7
    assert [b.index for b in blocks if b.replaceable] == [3, 5, 7, 8, 9, 10, 11, 13]
    assert block_table("mobilenet_v1", width=0.75)[8].c_out == 384


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
@pytest.mark.parametrize("small_input, last_size", [(False, 1), (True, 4)])
def test_small_input_changes_stem_and_block_2_strides_only(name, small_input, last_size):
    blocks = block_table(name, small_input=small_input, input_size=32)
    assert blocks[-1].out_size == last_size
    model = get_backbone(name).build(0.5 if name == "mobilenet_v2" else 0.25, 10, small_input).eval()
    features = model.features(torch.randn(1, 3, 32, 32))
    assert features.shape[-1] == last_size
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    if small_input:
        assert [b.stride for b in blocks[:3]] == [1, 1, 1]
