"""ulsam-search: where ULSAM goes in a MobileNet, with how many subspaces, and what it costs.

The public API; everything else is an implementation detail.
"""

from .models.arch import Architecture, LoadReport, Placement, build_model, load_matching_state_dict, valid_groups
from .models.attention import create_attention, get_attention
from .models.backbones import Block, block_table
from .cost import Cost, Latency, count_cost, count_model, measure_latency
from .data import DATASETS, DataBundle, load_data
from .errors import InvalidInput
from .train import (EpochMetrics, TrainConfig, TrainingDiverged, TrainResult, evaluate, fit, load_checkpoint,
                    load_pretrained, seed_everything)
from .models.attention.ulsam import ULSAM, OfficialULSAM, convert_official_state_dict
from .models.variants import VARIANTS, Variant, resolve_arch

__version__ = "0.1.0"

__all__ = [
    "DATASETS", "Architecture", "Block", "Cost", "DataBundle", "EpochMetrics", "InvalidInput", "Latency", "LoadReport",
    "OfficialULSAM", "Placement", "TrainConfig", "TrainResult", "TrainingDiverged", "ULSAM", "VARIANTS", "Variant",
    "block_table", "build_model", "convert_official_state_dict", "count_cost", "count_model", "create_attention",
    "evaluate", "fit", "get_attention", "load_checkpoint", "load_data", "load_matching_state_dict", "load_pretrained",
    "measure_latency", "resolve_arch", "seed_everything", "valid_groups",
]
