"""ULSAM: Ultra-Lightweight Subspace Attention Module (Saini et al., WACV 2020).

The official module loops in Python over ``g`` sub-modules. Ours computes all subspaces at once: one depthwise
1x1 conv over the ``m`` channels, a grouped 1x1 conv ``m -> g`` and a softmax per subspace, which is the same
function with the same parameters (``convert_official_state_dict`` maps the official weights).

Training in eager mode runs a fused autograd function that reads the big ``N x m x h x w`` tensor a few times
instead of about ten: the depthwise conv and the first BatchNorm fold into one per-channel affine map, the max-pool
runs in channels_last, and backward is written by hand; it keeps less for backward than the loop (the pooled map and
its argmax, plus the small ``N x g x h x w`` attention tensors). TorchScript and ``torch.compile`` see the plain
composite of standard ops (same numbers).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ULSAM", "OfficialULSAM", "convert_official_state_dict"]

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
        training = self.training
        factor_dw = _running_stats_factor(self.bn_dw)
        factor_pw = _running_stats_factor(self.bn_pw)
        return _FusedULSAM.apply(
            x,
            self.conv_dw.weight,
            self.conv_dw.bias,
            self.bn_dw.weight,
            self.bn_dw.bias,
            self.conv_pw.weight,
            self.conv_pw.bias,
            self.bn_pw.weight,
            self.bn_pw.bias,
            self.bn_dw.running_mean,
            self.bn_dw.running_var,
            self.bn_pw.running_mean,
            self.bn_pw.running_var,
            training,
            factor_dw,
            factor_pw,
            self.bn_dw.eps,
            self.groups,
        )

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


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, -1, 1, 1)


class _FusedULSAM(torch.autograd.Function):
    """ULSAM forward/backward by hand, in at least float32 whatever the input dtype.

    The max-pool runs in channels_last (several times faster than NCHW on CPU) and keeps its argmax indices;
    everything else reads the input in place. Saved for backward: the pooled map, its indices and the small
    ``N x g x h x w`` attention tensors; the loop over subspaces keeps about twice as much.
    """

    @staticmethod
    def forward(ctx, x, w_dw, b_dw, g_dw, beta_dw, w_pw, b_pw, g_pw, beta_pw, rm_dw, rv_dw, rm_pw, rv_pw,
                training, factor_dw, factor_pw, eps, groups):
        in_dtype = x.dtype
        x = x.to(torch.promote_types(x.dtype, w_dw.dtype)).contiguous()
        n, m, h, w = x.shape
        size, count = m // groups, n * h * w
        a = w_dw.reshape(m)
        r = torch.empty_like(x, memory_format=torch.channels_last)
        if training:
            # depthwise conv + BatchNorm in training mode fold into alpha * (x - mean_x) + bn bias
            mean_x = x.sum(dim=(0, 2, 3)) / count
            centred = x - _per_channel(mean_x)
            var_x = _channel_dot(centred, centred) / count
            var_u = a * a * var_x
            inv_dw = torch.rsqrt(var_u + eps)
            alpha = g_dw * a * inv_dw
            torch.addcmul(_per_channel(beta_dw), centred, _per_channel(alpha), out=r)
            del centred
            if factor_dw:
                _update_running(rm_dw, rv_dw, a * mean_x + b_dw, var_u, count, factor_dw)
        else:
            mean_x = var_x = None
            inv_dw = torch.rsqrt(rv_dw + eps)
            alpha = g_dw * a * inv_dw
            torch.addcmul(_per_channel(beta_dw + (b_dw - rm_dw) * g_dw * inv_dw), x, _per_channel(alpha), out=r)
        pooled, indices = F.max_pool2d(r.relu_(), **_POOL, return_indices=True)
        del r
        wp = w_pw.reshape(groups, size)
        pooled_nhwc = pooled.permute(0, 2, 3, 1).view(n, h * w, groups, size)
        s = ((pooled_nhwc * wp).sum(dim=-1) + b_pw).transpose(1, 2).reshape(n, groups, 1, h * w)
        if training:
            var_s, mean_s = torch.var_mean(s, dim=(0, 2, 3), correction=0)
            if factor_pw:
                _update_running(rm_pw, rv_pw, mean_s, var_s, count, factor_pw)
        else:
            var_s, mean_s = rv_pw, rm_pw
        inv_pw = torch.rsqrt(var_s + eps)
        s_hat = (s - _per_channel(mean_s)) * _per_channel(inv_pw)
        q = torch.addcmul(_per_channel(beta_pw), s_hat, _per_channel(g_pw)).relu_()
        attn = q.softmax(dim=-1)
        xs = x.view(n, groups, size, h * w)
        out = torch.addcmul(xs, xs, attn).view(n, m, h, w)
        ctx.save_for_backward(x, attn, q, s_hat, pooled, indices, inv_pw, a, g_dw, g_pw, inv_dw, alpha, wp,
                              *([mean_x, var_x] if training else [b_dw, rm_dw]))
        ctx.training, ctx.groups, ctx.in_dtype = training, groups, in_dtype
        return out.to(in_dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x, attn, q, s_hat, pooled, indices, inv_pw, a, g_dw, g_pw, inv_dw, alpha, wp,
         extra1, extra2) = ctx.saved_tensors
        training, groups = ctx.training, ctx.groups
        n, m, h, w = x.shape
        size, count = m // groups, n * h * w
        go = grad_out.to(x.dtype).contiguous().view(n, groups, size, h * w)
        xs = x.view(n, groups, size, h * w)

        # out = x * (1 + attn): the direct path, and the gradient reaching the attention maps
        grad_x = torch.addcmul(go, go, attn).view(n, m, h, w)
        d_attn = (go * xs).sum(dim=2, keepdim=True)
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

        # grouped 1x1 conv and max-pool; the relu mask is "window max > 0", the max sits where relu passed
        pooled_nhwc = pooled.permute(0, 2, 3, 1).view(n, h * w, groups, size)
        d_s_nhwc = d_s.view(n, groups, h * w).transpose(1, 2).unsqueeze(-1)
        d_w_pw = (pooled_nhwc * d_s_nhwc).sum(dim=(0, 1))
        d_pooled = torch.ops.aten.threshold_backward(wp * d_s_nhwc, pooled_nhwc, 0)
        d_pooled = d_pooled.view(n, h, w, m).permute(0, 3, 1, 2)
        d_v = torch.ops.aten.max_pool2d_with_indices_backward(
            d_pooled, torch.empty_like(pooled), [3, 3], [1, 1], [1, 1], [1, 1], False, indices
        ).contiguous()
        del d_pooled

        # depthwise conv + first BatchNorm, seen as v = alpha * x + beta
        s1 = d_v.sum(dim=(0, 2, 3))
        s2 = _channel_dot(d_v, x)
        grad_x.addcmul_(d_v, _per_channel(alpha))
        if training:
            mean_x, var_x = extra1, extra2
            d_g_dw = inv_dw * a * (s2 - mean_x * s1)
            d_a = inv_dw * g_dw * (s2 - s1 * mean_x - d_g_dw * a * inv_dw * var_x)
            d_b = torch.zeros_like(s1)
            k2 = -alpha * a * inv_dw * d_g_dw / count
            k3 = -alpha * s1 / count - k2 * mean_x
            grad_x.addcmul_(x, _per_channel(k2)).add_(_per_channel(k3))
        else:
            b_dw, rm_dw = extra1, extra2
            d_g_dw = inv_dw * (a * s2 + (b_dw - rm_dw) * s1)
            d_a = g_dw * inv_dw * s2
            d_b = g_dw * inv_dw * s1
        return (grad_x.to(ctx.in_dtype), d_a.view(m, 1, 1, 1), d_b, d_g_dw, s1, d_w_pw.view(groups, size, 1, 1),
                d_b_pw, d_g_pw, d_beta_pw) + (None,) * 9


def _channel_dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-channel sum of u * v over batch and space, as one batched dot product (no N*m*h*w temporary)."""
    n, m, h, w = u.shape
    return torch.bmm(u.view(n * m, 1, h * w), v.view(n * m, h * w, 1)).view(n, m).sum(dim=0)


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
