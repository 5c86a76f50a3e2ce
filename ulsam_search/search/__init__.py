"""The search stage: the space, the objectives, samplers, schedulers and trial backends (each a registry), the
trial records, the run directory, the runner and its Ray adapter.

Names are imported on first use, so importing the package (or a registry, as ``config`` does) imports neither
torch, Ray nor Optuna.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "run_search": ".runner", "resume_search": ".runner", "prepare_run": ".runner",
    "build_space": ".space", "SearchSpace": ".space",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
