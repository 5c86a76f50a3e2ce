"""ulsam-search: where ULSAM goes in a MobileNet, with how many subspaces, and what it costs.

The public API; everything else is an implementation detail. Names are imported on first use, so importing the
package imports neither torch nor Ray.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Architecture": ".models", "Block": ".models", "LoadReport": ".models", "OfficialULSAM": ".models",
    "Placement": ".models", "ULSAM": ".models", "VARIANTS": ".models", "Variant": ".models",
    "block_table": ".models", "build_model": ".models", "convert_official_state_dict": ".models",
    "create_attention": ".models", "get_attention": ".models", "load_matching_state_dict": ".models",
    "resolve_arch": ".models", "valid_groups": ".models",
    "Cost": ".cost", "Latency": ".cost", "count_cost": ".cost", "count_model": ".cost", "measure_latency": ".cost",
    "DATASETS": ".data", "DataBundle": ".data", "load_data": ".data",
    "InvalidInput": ".errors",
    "EpochMetrics": ".train", "TrainConfig": ".train", "TrainResult": ".train", "TrainingDiverged": ".train",
    "evaluate": ".train", "fit": ".train", "load_checkpoint": ".train", "load_pretrained": ".train",
    "seed_everything": ".train",
    "run_search": ".workflows", "resume_search": ".workflows", "write_report": ".report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
