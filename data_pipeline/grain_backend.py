"""Grain executor of clip plans, for runtimes without TensorFlow.

Gives exactly the batches of `tfdata` for the same plan: both gather the same
indices and convert uint8 -> float32 with the same division. Never imports
TensorFlow.
"""

from collections.abc import Iterator

import grain
import numpy as np

from data_pipeline import clips
from data_pipeline import framestore

_ENDLESS = 2**62


def _to_float(clips_u8: np.ndarray) -> np.ndarray:
  clips = clips_u8.astype(np.float32)
  clips /= np.float32(255.0)  # In place: one float32 batch, not two.
  return clips


def _options(num_threads: int, prefetch: int) -> grain.ReadOptions:
  # Gathers are large memcpys that release the GIL, so a few threads overlap
  # them with the training step; more only contend with the consumer.
  return grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)


def train_iterator(
  store: framestore.FrameStore, plan: clips.TrainPlan, start_step: int = 0, num_threads: int = 2, prefetch: int = 4
) -> Iterator[dict[str, np.ndarray]]:
  """Endless iterator of {'clips': f32 (b, T, H, W, C)} from `start_step`."""

  def load(step):
    return {"clips": _to_float(store.frames[plan.frame_indices(step)])}

  ds = grain.MapDataset.range(start_step, _ENDLESS).map(load)
  return iter(ds.to_iter_dataset(_options(num_threads, prefetch)))


def eval_iterator(
  store: framestore.FrameStore, plan: clips.EvalPlan, num_threads: int = 2, prefetch: int = 4
) -> Iterator[dict[str, np.ndarray]]:
  """Iterator of padded evaluation batches, in frame order."""

  def load(i):
    batch = plan.batch(i)
    out = {k: batch[k] for k in ("video", "frame", "label", "valid")}
    out["clips"] = _to_float(store.frames[batch["indices"]])
    return out

  ds = grain.MapDataset.range(plan.num_batches).map(load)
  return iter(ds.to_iter_dataset(_options(num_threads, prefetch)))
