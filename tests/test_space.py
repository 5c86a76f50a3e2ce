import optuna
import pytest

from ulsam_search.models.arch import Architecture
from ulsam_search.config import SearchConfig
from ulsam_search.errors import InvalidInput
from ulsam_search.search.space import build_space, param_name


def _space(**kw):
    return build_space(SearchConfig(**kw))


def test_choices_follow_the_block_table():
    space = _space(backbone="mobilenet_v2", width=0.35, space={"blocks": [1, 12, 16], "groups": [1, 2, 4, 8, 16]})
    choices = dict(space.choices)
    # At width 0.35 block 1 is 16->8 channels (no replace, g <= 8); block 12 is 32->32 (replaceable);
    # block 16 is 56->56 (16 does not divide 56).
    assert choices[1] == ("none", "+1", "+2", "+4", "+8")
    assert choices[12] == ("none", "+1", "+2", "+4", "+8", "+16", "=1", "=2", "=4", "=8", "=16")
    assert choices[16] == ("none", "+1", "+2", "+4", "+8", "=1", "=2", "=4", "=8")
    assert space.size == 5 * 11 * 9 and space.blocks == (1, 12, 16)
    assert str(space.architecture({12: "=4", 16: "+2"})) == "mobilenet_v2@0.35:12=4,16+2"
    assert str(space.cheapest()) == "mobilenet_v2@0.35:12=1,16=1"
    assert space.grid() == {param_name(b): list(c) for b, c in space.choices}


def test_define_by_run_and_per_block_overrides():
    space = _space(backbone="mobilenet_v1", space={"blocks": [7, 13], "ops": ["none", "insert"],
                                                    "per_block": {13: {"ops": ["replace"], "groups": [8]}}})
    assert dict(space.choices)[13] == ("=8",)  # a single choice: fixed, not sampled
    arch = space.suggest(optuna.trial.FixedTrial({"block_7": "+4"}))
    assert arch == Architecture.parse("mobilenet_v1:7+4,13=8")
    assert space.from_params({"block_7": "none"}) == Architecture.parse("mobilenet_v1:13=8")


@pytest.mark.parametrize("kw, message", [
    (dict(backbone="mobilenet_v3"), "backbone: unknown backbone 'mobilenet_v3'"),
    (dict(width=0.3), "width: width 0.3 is not available for mobilenet_v2; valid widths: 0.35"),
    (dict(space={"blocks": [30]}), "space.blocks: block 30 out of range for mobilenet_v2; valid blocks: 1..17"),
    (dict(space={"blocks": [12, 15], "groups": [1, 7]}), "space.groups: g=7 divides the channels of no candidate block"),
    (dict(space={"blocks": [12], "per_block": {12: {"groups": [5, 7]}}}),
     "space.per_block.12.groups: none of 5, 7 divides the 96 channels of block 12; valid g: 1, 2, 3, 4, 6, 8"),
    (dict(space={"blocks": [1], "per_block": {1: {"ops": ["replace"]}}}),
     "space.per_block.1.ops: block 1 cannot be replaced (stride 1, 32->16 channels)"),
    (dict(space={"blocks": [12], "per_block": {15: {"ops": ["none"]}}}),
     "space.per_block.15: block 15 is not a candidate; add it to space.blocks"),
    (dict(space={"blocks": [12, 15], "ops": ["none"]}), "space: nothing to search"),
])
def test_space_errors_name_the_field(kw, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        _space(**kw)


@pytest.mark.parametrize("convention", ["paper", "full"])
def test_cheapest_is_the_fewest_macs_and_params_of_every_architecture_under_each_convention(convention):
    import itertools

    from ulsam_search.cost import count_cost

    space = _space(backbone="mobilenet_v2", width=0.35, space={"blocks": [12, 16], "groups": [1, 4, 8]})
    costs = [count_cost(space.architecture(dict(zip(space.blocks, chosen))), 32, 10, convention, True)
             for chosen in itertools.product(*(options for _, options in space.choices))]
    assert len(costs) == space.size
    cheapest = count_cost(space.cheapest(), 32, 10, convention, True)
    assert cheapest.macs == min(c.macs for c in costs) and cheapest.params == min(c.params for c in costs)
