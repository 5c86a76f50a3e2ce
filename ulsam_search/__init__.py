"""ulsam-search: where ULSAM goes in a MobileNet, with how many subspaces, and what it costs.

The public API; everything else is an implementation detail.
"""

from .arch import Architecture, LoadReport, Placement, build_model, load_matching_state_dict, valid_groups
from .attention import create_attention, get_attention
from .backbones import Block, block_table
from .cost import Cost, Latency, count_cost, count_model, measure_latency
from .errors import InvalidInput
from .ulsam import ULSAM, OfficialULSAM, convert_official_state_dict
from .variants import VARIANTS, Variant, resolve_arch

__version__ = "0.1.0"

__all__ = [
    "Architecture", "Block", "Cost", "InvalidInput", "Latency", "LoadReport", "OfficialULSAM", "Placement", "ULSAM", "VARIANTS",
    "Variant", "block_table", "build_model", "convert_official_state_dict", "count_cost", "count_model",
    "create_attention", "get_attention", "load_matching_state_dict", "measure_latency", "resolve_arch",
    "valid_groups",
]
