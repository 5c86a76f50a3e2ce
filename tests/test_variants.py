import pytest

from ulsam_search import VARIANTS, resolve_arch
from ulsam_search.errors import InvalidInput


def test_every_variant_resolves_with_default_and_paper_groups():
    assert len(VARIANTS) == 12
    for name, variant in VARIANTS.items():
        assert all(p.groups == 4 for p in resolve_arch(name).placements)
        for g in variant.paper_groups:
            assert all(p.groups == g for p in resolve_arch(f"{name}/{g}").placements)


@pytest.mark.parametrize("name, arch", [
    ("paper-mv2-c/8", "mobilenet_v2:12=8,15=8"),
    ("paper-mv2-f", "mobilenet_v2:12=4,13=4,15=4,16=4"),
    ("paper-mv2-e/16", "mobilenet_v2:9=16,12=16"),
    ("paper-mv1-0.75-reduced/1", "mobilenet_v1@0.75:11=1"),
    ("paper-mv1-added-7", "mobilenet_v1:13+4"),
    ("mobilenet_v2:15=4", "mobilenet_v2:15=4"),
])
def test_resolve(name, arch):
    assert str(resolve_arch(name)) == arch


@pytest.mark.parametrize("text, message", [
    ("paper-mv3-a", "unknown variant 'paper-mv3-a'; valid variants: paper-mv1-added-14,"),
    ("paper-mv2-c/x", "malformed subspace count '/x'"),
    ("paper-mv2-c/7", "g=7 does not divide the 96 channels at block 12"),
])
def test_bad_variant(text, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        resolve_arch(text)
