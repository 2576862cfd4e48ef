"""The trained network, made ready for inference only (no Qt; torch inside).

What changes against the plain module (model.AirpiNet in eval mode), none of it the weights'
values beyond float rounding:

- every Conv2d followed by its BatchNorm2d is folded into one convolution (eval-mode BN is an
  affine map per channel: w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β; torch.fx fuse), which
  removes a full pass over each activation;
- inputs and weights in channels-last layout (oneDNN's native layout for the blocked kernels);
- ``torch.inference_mode`` (no autograd bookkeeping);
- on a CPU with AMX bfloat16 tiles (``precision="auto"``), the convolutions run in bfloat16 under
  autocast (float32 accumulation inside oneDNN; outputs cast back to float32). Measured on the
  quick bench this moves no xc by more than 0.001 (docs/benchmarks.md); ``precision="float32"``
  keeps float32 throughout. On CUDA the module is the same fused, channels-last network in float32.

FLOPs per pattern (multiply-adds × 2) are counted once with torch's FlopCounterMode for the bench.
"""

from __future__ import annotations

import copy
import functools
import sys

import torch

PRECISIONS = ("auto", "float32", "bfloat16")


@functools.lru_cache(maxsize=1)
def cpu_has_amx_bf16() -> bool:
    """True when this CPU has AMX bfloat16 tiles (Linux /proc/cpuinfo flag) and oneDNN can use bf16."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    try:
        ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        ok = False
    return ok and " amx_bf16" in flags


def resolve_precision(precision: str, device) -> str:
    """"auto" -> "bfloat16" on an AMX CPU, else "float32"; a bad value is a ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dev = torch.device(device)
    if precision == "auto":
        return "bfloat16" if dev.type == "cpu" and cpu_has_amx_bf16() else "float32"
    if precision == "bfloat16" and dev.type != "cpu":
        raise ValueError("precision 'bfloat16' is for the CPU path; on a GPU use 'auto' or 'float32'")
    return precision


class InferenceNet:
    """Callable x (B, 11, 64, 64) float32 -> (amplitude, phase) float32, as the plain module's forward."""

    def __init__(self, net: torch.nn.Module, device="cpu", precision: str = "auto"):
        from torch.fx.experimental.optimization import fuse

        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        plain = copy.deepcopy(net).eval()
        self.module = fuse(plain).to(self.device).to(memory_format=torch.channels_last)
        self.fused = sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.precision == "bfloat16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    amp, phase = self.module(x)
                return amp.float(), phase.float()
            return self.module(x)

    def describe(self) -> dict:
        return {"conv_bn_fused": self.fused, "memory_format": "channels_last", "precision": self.precision,
                "inference_mode": True}


_CACHE: dict = {}


def inference_network(net: torch.nn.Module, key, device="cpu", precision: str = "auto") -> InferenceNet:
    """The InferenceNet of ``net``, cached per (key, device, precision) (folding costs ~0.1 s)."""
    k = (key, str(device), resolve_precision(precision, device))
    if k not in _CACHE:
        _CACHE[k] = InferenceNet(net, device, k[2])
    return _CACHE[k]


def flops_per_pattern(net: torch.nn.Module, window_px: int = 64, in_channels: int = 11) -> float:
    """Floating-point operations of one forward pass on one pattern (torch FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, in_channels, window_px, window_px, device=next(net.parameters()).device)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        net(x)
    return float(fc.get_total_flops())
