"""Batch reconstruction with a model bundle.

  python -m maskedskip_jax.reconstruct --model BUNDLE_DIR --input clips.npy --output recon.npy

clips.npy: float32 (N, T, H, W, C) in [0, 1]; recon.npy: float32 (N, H, W, C), the
centre frame of each clip reconstructed in inference mode (BatchNorm running
statistics) in float32. The input is memory-mapped and the output filled batch by
batch, so N is not limited by RAM; the output appears only when complete.
"""

import os

import numpy as np

from maskedskip_jax import atomic
from maskedskip_jax.deploy import bundle
from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import inference
from maskedskip_jax.nn import models


def load_clips(path: str, model: models.MaskedSkipUNet) -> np.ndarray:
  """Memory-maps `path` (never unpickling) and checks it fits `model`; values are checked per batch."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file")
  try:
    clips = np.load(path, mmap_mode="r", allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise UserError(f"{path}: not a plain .npy array ({' '.join(str(e).split())})") from None
  if not isinstance(clips, np.ndarray):
    raise UserError(f"{path}: expected one .npy array, got an .npz archive")
  if not np.issubdtype(clips.dtype, np.floating):
    raise UserError(f"{path}: expected float32 clips in [0, 1], got dtype {clips.dtype}")
  if clips.ndim != 5 or clips.shape[0] == 0:
    raise UserError(f"{path}: expected clips of shape (N, T, H, W, C) with N > 0, got {clips.shape}")
  try:
    models.check_input_shape(model, clips.shape)
  except UserError as e:
    raise UserError(f"{path}: {e}") from None
  return clips


def run(model_dir: str, input_path: str, output_path: str, batch_size: int = 16) -> tuple[int, ...]:
  """Reads the bundle and clips, writes recon to `output_path` via a temp file; returns its shape."""
  if batch_size < 1:
    raise UserError(f"--batch-size: must be positive, got {batch_size}")
  model, variables, _ = bundle.load(model_dir)
  clips = load_clips(input_path, model)
  out_dir = os.path.dirname(os.path.abspath(output_path))
  if not os.path.isdir(out_dir):
    raise UserError(f"{output_path}: directory {out_dir} does not exist")
  n, _, h, w, c = clips.shape
  with atomic.path(output_path) as tmp:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, h, w, c))
    inference.reconstruct(model, variables, clips, batch_size, out, name=input_path)
    out.flush()
    del out
  return (n, h, w, c)
