"""The PyTorch side of `vs_pytorch.py`: the tests' twin network, its training step and inference.

The network is `tests/torch_twin.py` (the reference structure, written from SPEC §1)
unchanged. `skips='centre'` gives PyTorch the same shortcut the JAX model takes by
default: each masked 3-D skip conv computes only the centre frame, as one 2-D conv
over the time-stacked channels (`centre_only_skip`); the reference computes all T
frames and drops two. Timing both keeps the comparison honest either way.
"""

import os
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import torch_twin  # pylint: disable=g-import-not-at-top,wrong-import-position

SKIP_MODES = ("full3d", "centre")


def centre_only_skip(conv: torch.nn.Module, feat: torch.Tensor) -> torch.Tensor:
  """Centre frame of a SAME 3-D conv (masked or not) over (B, c, T, h, w), as one 2-D conv.

  With a T-tap kernel and SAME padding the centre output sees each input frame
  through exactly one time tap, so folding T into the input channels (index c*T + t,
  which is how both the input and the (out, c, T, k, k) weight flatten) is exact.
  """
  inner = conv.conv if hasattr(conv, "filter_mask") else conv
  weight = inner.weight * conv.filter_mask if hasattr(conv, "filter_mask") else inner.weight
  b, c, t, h, w = feat.shape
  weight = weight.reshape(weight.shape[0], c * t, *weight.shape[3:])
  return F.conv2d(feat.reshape(b, c * t, h, w), weight, inner.bias, padding="same")


class CentreOnlyTwin(torch_twin.Twin):
  """The twin with centre-only 3-D skips; same parameters, same outputs."""

  def _skip(self, i, feat):
    if self.kind not in ("masked3d", "conv3d") or not self.active[i - 1]:
      return super()._skip(i, feat)
    name = "conv" if self.kind == "conv3d" else "mconv"
    return centre_only_skip(self.get_submodule(f"{name}{i}"), feat)


def build(variant: str, latent_dim: int, channels: int, temporal: int, skips: str = "full3d") -> torch.nn.Module:
  if skips not in SKIP_MODES:
    raise ValueError(f"skips: expected one of {SKIP_MODES}, got {skips!r}")
  cls = CentreOnlyTwin if skips == "centre" else torch_twin.Twin
  return cls(variant, latent_dim=latent_dim, channels=channels, temporal=temporal)


def norm_loss(target: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
  """SPEC §1 NormLoss on NCHW tensors, in float32 (the same epsilon as the JAX loss)."""
  diff = target.float() - recon.float()
  return torch.sqrt(torch.sum(diff * diff, dim=1) + 1e-12).mean()


def _sync(device: torch.device) -> None:
  if device.type == "cuda":
    torch.cuda.synchronize(device)


def _median_ms(run, steps: int, device) -> tuple[float, float]:
  """(median wall ms, median process CPU ms); CPU time is the load-robust figure on a shared CPU."""
  times, cpu = [], []
  for _ in range(steps):
    begin, begin_cpu = time.perf_counter(), time.process_time()
    run()
    _sync(device)
    times.append((time.perf_counter() - begin) * 1e3)
    cpu.append((time.process_time() - begin_cpu) * 1e3)
  return float(np.median(times)), float(np.median(cpu))


def _warm(run, warmup: int, device) -> tuple[float, float]:
  """(first call s, further warm-up s): compilation, autotuning and allocator growth happen here."""
  begin = time.perf_counter()
  run()
  _sync(device)
  first = time.perf_counter() - begin
  begin = time.perf_counter()
  for _ in range(warmup):
    run()
  _sync(device)
  return first, time.perf_counter() - begin


def bench(
  net: torch.nn.Module,
  clips_train: np.ndarray,
  clips_infer: np.ndarray,
  *,
  steps: int,
  warmup: int,
  device: str = "cpu",
  bf16: bool = False,
  compile_mode: str | None = None,
  learning_rate: float = 1e-2,
) -> dict:
  """Adam + norm-loss training steps (train-mode BN) and eval-mode inference, timed like the JAX side.

  Clips arrive as (B, T, H, W, C) float32 numpy and are laid out NCTHW once,
  outside the timed region (the JAX side also feeds arrays already on device).
  """
  dev = torch.device(device)
  net = net.to(dev)
  to_torch = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 4, 1, 2, 3))).to(dev)
  x_train, x_infer = to_torch(clips_train), to_torch(clips_infer)
  centre = (x_train.shape[2] - 1) // 2
  target = x_train[:, :, centre]
  model = torch.compile(net, mode=compile_mode) if compile_mode else net
  opt = torch.optim.Adam(net.parameters(), lr=learning_rate, fused=dev.type == "cuda")
  autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)

  def train_step():
    opt.zero_grad(set_to_none=True)
    with autocast():
      recon = model(x_train)
    loss = norm_loss(target, recon)
    loss.backward()
    opt.step()

  def infer():
    with torch.inference_mode(), autocast():
      model(x_infer)

  net.train()
  if dev.type == "cuda":
    torch.cuda.reset_peak_memory_stats(dev)
  train_first, train_warm = _warm(train_step, warmup, dev)
  train_ms, train_cpu_ms = _median_ms(train_step, steps, dev)
  out = {
    "train": {
      "first_step_s": round(train_first, 3),
      "warmup_s": round(train_warm, 3),
      "step_ms_median": round(train_ms, 3),
      "step_cpu_ms_median": round(train_cpu_ms, 3),
      "clips_per_s": round(x_train.shape[0] / train_ms * 1e3, 3),
    }
  }
  if dev.type == "cuda":
    out["train"]["peak_device_bytes"] = int(torch.cuda.max_memory_allocated(dev))
  net.eval()
  infer_first, infer_warm = _warm(infer, warmup, dev)
  infer_ms, infer_cpu_ms = _median_ms(infer, steps, dev)
  out["inference"] = {
    "first_step_s": round(infer_first, 3),
    "warmup_s": round(infer_warm, 3),
    "step_ms_median": round(infer_ms, 3),
    "step_cpu_ms_median": round(infer_cpu_ms, 3),
    "frames_per_s": round(x_infer.shape[0] / infer_ms * 1e3, 3),
  }
  return out
