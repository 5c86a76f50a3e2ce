"""ULSAM: Ultra-Lightweight Subspace Attention Module (Saini et al., WACV 2020).

The official module loops in Python over ``g`` sub-modules. Ours computes all subspaces at once: one depthwise
1x1 conv over the ``m`` channels, a grouped 1x1 conv ``m -> g`` and a softmax per subspace, which is the same
function with the same parameters (``convert_official_state_dict`` maps the official weights).

Training in eager mode runs a fused autograd function that reads the big ``N x m x h x w`` tensor a few times
instead of about ten: the depthwise conv and the first BatchNorm fold into one per-channel affine map, the pooled
branch runs in channels_last with the grouped 1x1 conv as matrix products, and backward is written by hand; it keeps
less for backward than the loop (the centred input, the pooled map and its argmax, and the small ``N x g x h x w``
attention tensors). TorchScript and ``torch.compile`` see the plain composite of standard ops (same numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import INSERT, REPLACE, AttentionType, register_attention

__all__ = ["ULSAM", "OfficialULSAM", "convert_official_state_dict", "ulsam_cost", "ulsam_macs"]

_POOL = dict(kernel_size=3, stride=1, padding=1)


class ULSAM(nn.Module):
    """Subspace attention over a ``channels``-channel feature map split into ``groups`` subspaces.

    Args:
        channels: number of input (= output) channels ``m``.
        groups: number of subspaces ``g``; must divide ``channels``.
        bn_momentum: PyTorch-convention momentum of both BatchNorms (``None`` = cumulative average). The
            official code passes 0.9, which in PyTorch makes the running statistics ~90% the last batch (a
            TensorFlow decay carried over); the default 0.1 is PyTorch's, i.e. the TF decay 0.9 the authors
            most likely meant. Pass 0.9 to reproduce the official module exactly.
        bn_eps: epsilon of both BatchNorms.
        fused: use the fused autograd function in eager mode (off: plain composite of standard ops).
    """

    def __init__(
        self,
        channels: int,
        groups: int = 4,
        *,
        bn_momentum: float | None = 0.1,
        bn_eps: float = 1e-5,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if channels <= 0 or groups <= 0 or channels % groups:
            raise ValueError(f"ULSAM groups={groups} must divide channels={channels}")
        self.channels = channels
        self.groups = groups
        self.fused = fused
        self.conv_dw = nn.Conv2d(channels, channels, kernel_size=1, groups=channels)
        self.bn_dw = nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum)
        self.conv_pw = nn.Conv2d(channels, groups, kernel_size=1, groups=groups)
        self.bn_pw = nn.BatchNorm2d(groups, eps=bn_eps, momentum=bn_momentum)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return self.forward_composite(x)
        return self._forward_eager(x)

    @torch.jit.unused
    def _forward_eager(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused or torch.compiler.is_compiling():
            return self.forward_composite(x)
        settings = _FusedSettings(self.training, _running_stats_factor(self.bn_dw), _running_stats_factor(self.bn_pw),
                                  self.bn_dw.eps, self.groups, torch.is_grad_enabled())
        dw, pw, bn_dw, bn_pw = self.conv_dw, self.conv_pw, self.bn_dw, self.bn_pw
        return _FusedULSAM.apply(x, dw.weight, dw.bias, bn_dw.weight, bn_dw.bias, pw.weight, pw.bias, bn_pw.weight,
                                 bn_pw.bias, bn_dw.running_mean, bn_dw.running_var, bn_pw.running_mean,
                                 bn_pw.running_var, settings)

    def forward_composite(self, x: torch.Tensor) -> torch.Tensor:
        """The module as standard ops (what TorchScript and ``torch.compile`` trace)."""
        n, m, h, w = x.shape
        y = F.relu(self.bn_dw(self.conv_dw(x)))
        y = F.max_pool2d(y, 3, 1, 1)
        logits = F.relu(self.bn_pw(self.conv_pw(y)))
        attn = logits.reshape(n, self.groups, 1, h * w).softmax(dim=-1).to(x.dtype)
        xs = x.reshape(n, self.groups, m // self.groups, h * w)
        return torch.addcmul(xs, xs, attn).reshape(n, m, h, w)


def _running_stats_factor(bn: nn.BatchNorm2d) -> float:
    """Momentum for this step's running-statistics update, exactly as ``nn.BatchNorm2d`` computes it."""
    if not (bn.training and bn.track_running_stats):
        return 0.0
    bn.num_batches_tracked.add_(1)
    if bn.momentum is None:
        return 1.0 / float(bn.num_batches_tracked)
    return float(bn.momentum)


def _channels_last_view(t: torch.Tensor) -> torch.Tensor:
    """A contiguous NCHW tensor's storage seen as a channels_last tensor of the same shape, to reuse it as scratch."""
    n, c, h, w = t.shape
    return t.as_strided((n, c, h, w), (c * h * w, 1, w * c, c))


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, -1, 1, 1)


@dataclass(frozen=True)
class _FusedSettings:
    """The fused function's non-tensor arguments, in one argument so that ``apply`` and ``backward`` stay short."""

    training: bool
    factor_dw: float  # this step's running-statistics momentum of each BatchNorm (0: no update)
    factor_pw: float
    eps: float
    groups: int
    needs_grad: bool  # whether to save tensors for backward


class _FusedULSAM(torch.autograd.Function):
    """ULSAM forward/backward by hand, in at least float32 whatever the input dtype, autocast or not.

    The pooled branch lives in channels_last (PyTorch's CPU max-pool is several times faster there), where the
    grouped 1x1 conv and its gradients are single matrix products with a block-diagonal ``g x m`` weight. Saved for
    backward: the centred input and the pooled map (channels_last), the max-pool's argmax and the small
    ``N x g x h x w`` attention tensors.
    """

    @staticmethod
    def forward(ctx, x, *args):
        # autocast would run the logits matmul in bf16/fp16; backward runs without autocast already
        with torch.autocast(x.device.type, enabled=False):
            return _FusedULSAM._forward(ctx, x, *args)

    @staticmethod
    def _forward(ctx, x, w_dw, b_dw, g_dw, beta_dw, w_pw, b_pw, g_pw, beta_pw, rm_dw, rv_dw, rm_pw, rv_pw,
                 settings: _FusedSettings):
        training, eps, groups, needs_grad = settings.training, settings.eps, settings.groups, settings.needs_grad
        in_dtype = x.dtype
        x = x.to(torch.promote_types(x.dtype, w_dw.dtype)).contiguous()
        n, m, h, w = x.shape
        count = n * h * w
        a = w_dw.reshape(m)
        # the depthwise conv and the first BatchNorm fold into v = alpha * centred + shift
        # big temporaries share one buffer (a fresh allocation of this size costs page faults on CPU): the squares,
        # then the pre-pool map r (channels_last), finally the output (NCHW)
        centred = torch.empty_like(x, memory_format=torch.channels_last)
        out = torch.empty_like(x)
        r = _channels_last_view(out)
        if training:
            mean_x = x.sum(dim=(0, 2, 3)) / count
            torch.sub(x, _per_channel(mean_x), out=centred)
            var_x = torch.mul(centred, centred, out=r).sum(dim=(0, 2, 3)) / count
            var_u = a * a * var_x
            inv_dw = torch.rsqrt(var_u + eps)
            shift = beta_dw
            if settings.factor_dw:
                _update_running(rm_dw, rv_dw, a * mean_x + b_dw, var_u, count, settings.factor_dw)
        else:
            var_x = None
            inv_dw = torch.rsqrt(rv_dw + eps)
            shift = beta_dw + (b_dw - rm_dw) * g_dw * inv_dw
            if needs_grad:
                centred.copy_(x)
            else:
                centred = x  # inference: the affine map below writes channels_last directly
        alpha = g_dw * a * inv_dw
        torch.addcmul(_per_channel(shift), centred, _per_channel(alpha), out=r)
        pooled, indices = F.max_pool2d(r.relu_(), **_POOL, return_indices=True)
        w_block = torch.block_diag(*w_pw.reshape(groups, 1, m // groups))  # g x m
        pooled_rows = pooled.permute(0, 2, 3, 1).reshape(n * h * w, m)
        s = (pooled_rows @ w_block.t() + b_pw).view(n, h * w, groups).transpose(1, 2).reshape(n, groups, 1, h * w)
        if training:
            var_s, mean_s = torch.var_mean(s, dim=(0, 2, 3), correction=0)
            if settings.factor_pw:
                _update_running(rm_pw, rv_pw, mean_s, var_s, count, settings.factor_pw)
        else:
            var_s, mean_s = rv_pw, rm_pw
        inv_pw = torch.rsqrt(var_s + eps)
        s_hat = (s - _per_channel(mean_s)) * _per_channel(inv_pw)
        q = torch.addcmul(_per_channel(beta_pw), s_hat, _per_channel(g_pw)).relu_()
        attn = q.softmax(dim=-1)
        xs = x.view(n, groups, m // groups, h * w)
        torch.addcmul(xs, xs, attn, out=out.view(n, groups, m // groups, h * w))
        if needs_grad:
            ctx.save_for_backward(x, centred, pooled, indices, attn, q, s_hat, w_pw, inv_pw, a, g_dw, g_pw,
                                  inv_dw, alpha, *([var_x] if training else [b_dw, rm_dw]))
            ctx.training, ctx.groups, ctx.in_dtype = training, groups, in_dtype
        return out.to(in_dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x, centred, pooled, indices, attn, q, s_hat, w_pw, inv_pw, a, g_dw, g_pw, inv_dw, alpha, *extra = (
            ctx.saved_tensors)
        training, groups = ctx.training, ctx.groups
        n, m, h, w = x.shape
        size, count = m // groups, n * h * w
        go = grad_out.to(x.dtype).contiguous().view(n, groups, size, h * w)
        # one buffer serves as scratch for go * x, then for the pooled-map gradient, and is finally grad_x
        grad_x = torch.empty_like(x).view(n, groups, size, h * w)

        # out = x * (1 + attn): the gradient reaching the attention maps
        d_attn = torch.mul(go, x.view(n, groups, size, h * w), out=grad_x).sum(dim=2, keepdim=True)
        d_q = attn * (d_attn - (attn * d_attn).sum(dim=-1, keepdim=True))
        d_t = d_q * (q > 0)
        # second BatchNorm, one channel per subspace
        d_beta_pw = d_t.sum(dim=(0, 2, 3))
        d_g_pw = (d_t * s_hat).sum(dim=(0, 2, 3))
        if training:
            d_s = _per_channel(g_pw * inv_pw) * (
                d_t - _per_channel(d_beta_pw / count) - s_hat * _per_channel(d_g_pw / count))
        else:
            d_s = d_t * _per_channel(g_pw * inv_pw)
        d_b_pw = d_s.sum(dim=(0, 2, 3))

        # grouped 1x1 conv as matrix products; the relu before the max-pool passes gradient where the window max > 0
        d_s_rows = d_s.view(n, groups, h * w).transpose(1, 2).reshape(n * h * w, groups)
        pooled_rows = pooled.permute(0, 2, 3, 1).reshape(n * h * w, m)
        d_w_pw = torch.diagonal((d_s_rows.t() @ pooled_rows).view(groups, groups, size)).t()
        d_pooled = _channels_last_view(grad_x.view(n, m, h, w))
        d_pooled_rows = d_pooled.permute(0, 2, 3, 1).view(n * h * w, groups, size)
        torch.mul(d_s_rows.unsqueeze(-1), w_pw.reshape(groups, size), out=d_pooled_rows)
        torch.ops.aten.threshold_backward.grad_input(d_pooled, pooled, 0, grad_input=d_pooled)
        d_v = torch.ops.aten.max_pool2d_with_indices_backward(
            d_pooled, pooled, [3, 3], [1, 1], [1, 1], [1, 1], False, indices)

        # depthwise conv + first BatchNorm: v = alpha * centred + shift, all in channels_last
        s1 = d_v.sum(dim=(0, 2, 3))
        s2 = torch.mul(d_v, centred, out=d_pooled).sum(dim=(0, 2, 3))
        del d_pooled
        if training:
            (var_x,) = extra
            d_g_dw = inv_dw * a * s2
            d_a = inv_dw * g_dw * (s2 - d_g_dw * a * inv_dw * var_x)
            d_b = torch.zeros_like(s1)
            d_branch = torch.addcmul(_per_channel(-alpha * s1 / count), d_v, _per_channel(alpha), out=d_v)
            d_branch.addcmul_(centred, _per_channel(-alpha * a * inv_dw * d_g_dw / count))
        else:
            b_dw, rm_dw = extra
            d_g_dw = inv_dw * (a * s2 + (b_dw - rm_dw) * s1)
            d_a = g_dw * inv_dw * s2
            d_b = g_dw * inv_dw * s1
            d_branch = d_v.mul_(_per_channel(alpha))
        # grad_x = go * (1 + attn) + the branch's gradient, written once in the input's (NCHW) layout
        torch.addcmul(d_branch.view(n, groups, size, h * w), go, attn + 1, out=grad_x)
        return (grad_x.view(n, m, h, w).to(ctx.in_dtype), d_a.view(m, 1, 1, 1), d_b, d_g_dw, s1,
                d_w_pw.reshape(groups, size, 1, 1), d_b_pw, d_g_pw, d_beta_pw) + (None,) * 5  # running stats, settings


def _update_running(running_mean, running_var, mean, var, count, factor):
    running_mean.mul_(1 - factor).add_(mean, alpha=factor)
    running_var.mul_(1 - factor).add_(var * (count / max(count - 1, 1)), alpha=factor)


class _OfficialSubspace(nn.Module):
    def __init__(self, channels: int, bn_momentum: float | None) -> None:
        super().__init__()
        self.conv_dws = nn.Conv2d(channels, channels, kernel_size=1, groups=channels)
        self.bn_dws = nn.BatchNorm2d(channels, momentum=bn_momentum)
        self.relu_dws = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.conv_point = nn.Conv2d(channels, 1, kernel_size=1)
        self.bn_point = nn.BatchNorm2d(1, momentum=bn_momentum)
        self.relu_point = nn.ReLU()
        self.softmax = nn.Softmax(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.maxpool(self.relu_dws(self.bn_dws(self.conv_dws(x))))
        out = self.relu_point(self.bn_point(self.conv_point(out)))
        n, _, h, w = out.shape
        attn = self.softmax(out.view(n, 1, h * w)).view(n, 1, h, w)
        return torch.mul(attn.expand_as(x), x) + x


class OfficialULSAM(nn.Module):
    """The official module's structure: a Python loop over ``g`` sub-modules keyed ``subspaces.{i}.*``.

    A reference, not for training: the baseline of ``ulsam-search bench ulsam``, a layer-per-module form that thop
    can count, and a place to load official checkpoints unchanged. Same function as ``ULSAM`` (without the official
    file's global ``set_default_tensor_type``); ``bn_momentum`` defaults to the official 0.9.
    """

    def __init__(self, channels: int, groups: int, bn_momentum: float | None = 0.9) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"ULSAM groups={groups} must divide channels={channels}")
        self.groups = groups
        self.subspaces = nn.ModuleList(_OfficialSubspace(channels // groups, bn_momentum) for _ in range(groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.chunk(x, self.groups, dim=1)
        return torch.cat([sub(chunk) for sub, chunk in zip(self.subspaces, chunks)], dim=1)


_OFFICIAL_KEY = re.compile(r"^(?P<prefix>.*?)subspaces\.(?P<index>\d+)\.(?P<layer>conv_dws|bn_dws|conv_point|bn_point)\."
                           r"(?P<field>weight|bias|running_mean|running_var|num_batches_tracked)$")
_OFFICIAL_TO_OURS = {"conv_dws": "conv_dw", "bn_dws": "bn_dw", "conv_point": "conv_pw", "bn_point": "bn_pw"}


def convert_official_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a state_dict saved by the official ``ULSAM`` (``subspaces.{i}.conv_dws.weight``, ...) to ours.

    Keys that do not belong to an official ULSAM pass through unchanged, so a whole model's state_dict can be
    converted; ``prefix.subspaces.{i}.*`` becomes ``prefix.{conv_dw,bn_dw,conv_pw,bn_pw}.*`` with the
    subspaces concatenated along channels (``num_batches_tracked`` is taken from subspace 0).
    """
    collected: dict[tuple[str, str, str], dict[int, torch.Tensor]] = {}
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = _OFFICIAL_KEY.match(key)
        if match is None:
            converted[key] = value
            continue
        slot = (match["prefix"], _OFFICIAL_TO_OURS[match["layer"]], match["field"])
        collected.setdefault(slot, {})[int(match["index"])] = value
    for (prefix, layer, field), parts in collected.items():
        ordered = [parts[i] for i in sorted(parts)]
        if sorted(parts) != list(range(len(parts))):
            raise ValueError(f"official ULSAM state_dict under '{prefix}' is missing subspaces: has {sorted(parts)}")
        value = ordered[0].clone() if field == "num_batches_tracked" else torch.cat(ordered, dim=0)
        converted[f"{prefix}{layer}.{field}"] = value
    return converted


def ulsam_macs(channels: int, groups: int, height: int, width: int, convention: str) -> int:
    """MACs of one ULSAM on a ``channels x height x width`` tensor: ``paper`` counts the two 1x1 convs whatever g
    (2*m*h*w, as the paper does); ``full`` adds thop's BatchNorm and softmax rules and the gate's multiply and add."""
    hw = height * width
    if convention == "paper":
        return 2 * channels * hw
    convs = 2 * channels * hw  # depthwise m -> m and grouped pointwise m -> g, both 1x1
    batch_norms = 4 * (channels + groups) * hw  # thop: 2 ops per element, doubled when affine
    softmax = groups * (3 * hw - 1)  # thop: exp, add, divide
    gate = 2 * channels * hw  # A * F and + F
    return convs + batch_norms + softmax + gate


def ulsam_cost(module: ULSAM, channels: int, height: int, width: int, convention: str) -> tuple[int, int]:
    """(MACs, params) of one ULSAM; ``paper`` counts 2*m parameters (the convs' weights), ``full`` every one."""
    params = 2 * module.channels if convention == "paper" else sum(
        p.numel() for p in module.parameters() if p.requires_grad)
    return ulsam_macs(channels, module.groups, height, width, convention), params


register_attention(AttentionType("ulsam", ULSAM, frozenset({INSERT, REPLACE}), ulsam_cost))
