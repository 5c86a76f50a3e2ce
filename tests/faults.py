"""Faults injected into real trials inside Ray's worker processes, for tests/test_faults.py.

Ray runs ``install`` in every worker it starts (``runtime_env={"worker_process_setup_hook": "faults.install"}``).
``ULSAM_TEST_FAULTS`` (JSON) maps ARCH strings to ``"<fault>@<step>"``; the model a trial builds for such an ARCH
misbehaves from that training step on (counted over epochs from 1), and everything after that is the real trial
code:

    raise   the forward pass raises RuntimeError (a bug in a trial)
    nan     the forward pass returns NaN (the loss diverges; training's own check raises TrainingDiverged)
    oom     the forward pass raises torch.OutOfMemoryError (a simulated allocation failure)
"""

import json
import os
from pathlib import Path

# How long a kill test waits for a run to reach the point it kills at: a bound for a stuck run, not a pace (tests
# share the cores; under load 240 s once passed before 3 trials had finished).
STUCK_RUN_S = 600


def _fault_hook(spec: str):
    import torch

    fault, step = spec.split("@")
    calls = {"n": 0}

    def hook(module, inputs, output):
        if not module.training:
            return output
        calls["n"] += 1
        if calls["n"] < int(step):
            return output
        if fault == "raise":
            raise RuntimeError("injected fault: a bug in this trial")
        if fault == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return output * float("nan")

    return hook


def install() -> None:
    import ulsam_search.search.backends.train as train_backend

    faults = json.loads(os.environ.get("ULSAM_TEST_FAULTS", "{}"))
    build = train_backend.build_model

    def build_model(arch, *args, **kwargs):
        model = build(arch, *args, **kwargs)
        if str(arch) in faults:
            model.register_forward_hook(_fault_hook(faults[str(arch)]))
        return model

    train_backend.build_model = build_model


def start_ray_with_faults(faults: dict[str, str]) -> None:
    """A local two-CPU Ray whose workers build the models of ``faults``' ARCHs to misbehave."""
    from ulsam_search.search._ray import start_local_ray

    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])
    start_local_ray(2, runtime_env={"worker_process_setup_hook": "faults.install",
                                    "env_vars": {"PYTHONPATH": path, "ULSAM_TEST_FAULTS": json.dumps(faults)}})
