"""Models: the attention registry (ULSAM and others), the backbones and their block tables, the ARCH string and
the one parser of per-block choices, ``build_model``, and the paper's named variants."""

from .arch import Architecture, Placement, parse_choice, valid_groups
from .attention import create_attention, get_attention
from .attention.ulsam import ULSAM, OfficialULSAM, convert_official_state_dict
from .backbones import Block, block_table
from .arch import LoadReport, build_model, load_matching_state_dict
from .variants import VARIANTS, Variant, resolve_arch

__all__ = ["Architecture", "Block", "LoadReport", "OfficialULSAM", "Placement", "ULSAM", "VARIANTS", "Variant",
           "block_table", "build_model", "convert_official_state_dict", "create_attention", "get_attention",
           "load_matching_state_dict", "parse_choice", "resolve_arch", "valid_groups"]
