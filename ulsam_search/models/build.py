"""Building a model from an ARCH (the backbone with its attention layers) and loading weights into it by name."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InvalidInput
from .arch import INSERT, Architecture
from .attention import create_attention
from .attention.ulsam import convert_official_state_dict
from .backbones import get_backbone


def build_model(arch: Architecture | str, num_classes: int = 1000, small_input: bool = False,
                dropout: float = 0.2, **attention_kwargs) -> nn.Module:
    """The backbone with attention placed as ``arch`` says; ``attention_kwargs`` go to every attention layer
    (e.g. ULSAM's bn_momentum).

    Insert fills block k's ``attn`` slot; replace puts the layer at ``features[k]``. Other blocks keep their indices and
    parameter names, so pretrained backbone weights load into them (``load_matching_state_dict``).
    """
    if isinstance(arch, str):
        arch = Architecture.parse(arch)
    if num_classes <= 0:
        raise InvalidInput(f"number of classes must be a positive integer, got {num_classes}")
    model = get_backbone(arch.backbone).build(arch.width, num_classes, small_input, dropout)
    blocks = {b.index: b for b in arch.blocks(small_input)}
    for p in arch.placements:
        attention = create_attention(p.attention, blocks[p.block].c_out, groups=p.groups, **attention_kwargs)
        if p.op == INSERT:
            model.features[p.block].attn = attention
        else:
            model.features[p.block] = attention
    model.arch = arch
    return model


@dataclass(frozen=True)
class LoadReport:
    """What ``load_matching_state_dict`` did: keys loaded, source keys skipped, model keys left as initialised."""

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    missing: tuple[str, ...]

    def summary(self) -> str:
        return f"loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, new {len(self.missing)}"


def load_matching_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> LoadReport:
    """Load every tensor whose name and shape match (e.g. torchvision weights into the surviving blocks).

    Official ULSAM keys (``subspaces.{i}.*``) are converted first.
    """
    state_dict = convert_official_state_dict(state_dict)
    own = model.state_dict()
    matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return LoadReport(
        loaded=tuple(matching),
        skipped=tuple(k for k in state_dict if k not in matching),
        missing=tuple(k for k in own if k not in matching),
    )
