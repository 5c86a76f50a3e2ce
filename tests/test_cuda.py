"""The CUDA paths, run by `make gpu-check` on a GPU machine; without CUDA each test is skipped with that reason
(CI has no GPU: these are the only tests that may skip there)."""

import copy
import math

import pytest
import torch

from ulsam_search import ULSAM, build_model, measure_latency
from ulsam_search.data import load_data
from ulsam_search.train import TrainConfig, autocast_dtype, fit, load_checkpoint, native_bf16

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run by `make gpu-check`)")
pytestmark = pytest.mark.cuda


@cuda
@pytest.mark.parametrize("m, hw, g", [(64, 28, 4), (96, 14, 8), (512, 7, 32)])
def test_fused_ulsam_on_cuda_matches_the_composite_path(m, hw, g):
    torch.manual_seed(0)
    fused = ULSAM(m, g).cuda().train()
    composite = copy.deepcopy(fused)
    composite.fused = False
    x = torch.randn(8, m, hw, hw, device="cuda").to(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    outputs = []
    for module in (fused, composite):
        xi = x.clone().requires_grad_()
        y = module(xi)
        y.backward(grad)
        outputs.append((y, xi.grad, [p.grad for p in module.parameters()], list(module.buffers())))
    (y1, g1, p1, b1), (y2, g2, p2, b2) = outputs
    torch.testing.assert_close(y1, y2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)
    for a, b in zip(p1 + b1, p2 + b2):
        torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-3, atol=1e-4)
    fused.eval()
    with torch.no_grad():
        plain = fused(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):  # the fused function computes in float32 under autocast
            assert torch.equal(fused(x), plain)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", batch_size=64, device="cuda", train_limit=512)


@cuda
@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_training_on_cuda_checkpoints_its_gpu_generator_and_resumes(digits, tmp_path, amp):
    config = TrainConfig(epochs=2, device="cuda", amp=amp)
    expected = torch.float16 if amp == "fp16" or not native_bf16(torch.device("cuda")) else torch.bfloat16
    assert autocast_dtype(amp, torch.device("cuda")) == expected
    path = tmp_path / "checkpoint.pt"

    def stop(metrics):
        if metrics.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(build_model("mobilenet_v2@0.35", 10, small_input=True), digits, config, checkpoint_path=path, callback=stop)
    state = load_checkpoint(path)
    assert isinstance(state["cuda_rng"], torch.Tensor) and (bool(state["scaler"]) == (expected == torch.float16))
    result = fit(build_model("mobilenet_v2@0.35", 10, small_input=True), digits, config, checkpoint_path=path,
                 resume=state)
    assert result.final.epoch == 2 and math.isfinite(result.final.train_loss) and result.final.top1 > 20


@cuda
def test_latency_on_cuda_is_timed_as_trained():
    model = build_model("mobilenet_v2@0.35:12=4", 10, small_input=True)
    bf16 = measure_latency(model, 32, batch=8, device="cuda", amp_dtype=torch.bfloat16, channels_last=True)
    fp32 = measure_latency(model, 32, batch=8, device="cuda")
    assert (bf16.precision, bf16.layout, fp32.precision) == ("bf16", "channels_last", "fp32")
    assert 0 < bf16.median_ms < 1e3 and 0 < fp32.median_ms < 1e3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no GPU")
def test_gpu_check_refuses_without_cuda_and_writes_nothing(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "record.md")], capture_output=True,
                          text=True)
    assert (done.returncode, done.stdout) == (2, "") and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: no CUDA device here; gpu-check needs one") and not list(tmp_path.iterdir())
