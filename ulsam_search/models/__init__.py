"""Models: the attention registry (ULSAM and others), the backbone registry and block tables, the ARCH string and
the one parser of per-block choices, ``build_model``, and the paper's named variants."""

from .arch import Architecture, Placement, choice_rank, parse_choice, valid_groups
from .attention import AttentionType, create_attention, get_attention, list_attentions, register_attention
from .attention.ulsam import ULSAM, OfficialULSAM, convert_official_state_dict
from .backbones import Backbone, Block, block_table, get_backbone, list_backbones, register_backbone
from .build import LoadReport, build_model, load_matching_state_dict
from .variants import VARIANTS, Variant, resolve_arch

__all__ = ["Architecture", "AttentionType", "Backbone", "Block", "LoadReport", "OfficialULSAM", "Placement", "ULSAM",
           "VARIANTS", "Variant", "block_table", "build_model", "choice_rank", "convert_official_state_dict",
           "create_attention", "get_attention", "get_backbone", "list_attentions", "list_backbones",
           "load_matching_state_dict", "parse_choice", "register_attention", "register_backbone", "resolve_arch",
           "valid_groups"]
