"""tf.data executor of clip plans (the default backend).

The plan decides everything (which frames, in which order); tf.data only runs
the gathers in parallel threads, converts to float32 inside the graph and keeps
batches prefetched while the accelerator trains. TensorFlow is imported lazily
and hidden from every accelerator, so that it never claims GPU/TPU memory that
JAX needs.
"""

from collections.abc import Iterator
import functools

import numpy as np

from data_pipeline import clips
from data_pipeline import framestore

# A train stream is endless; tf.data ranges need an end, so use one that no run
# can reach.
_ENDLESS = 2**62


@functools.cache
def tf_module():
  """TensorFlow, imported on first use with accelerators made invisible."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  # Must run before TF creates any op: afterwards devices are fixed.
  for kind in ("GPU", "TPU"):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError):
      pass  # No such device type here, or already initialised without it.
  return tf


def _to_float(tf, clips_u8):
  # Division (not multiplication by 1/255) so that the Grain backend's numpy
  # arithmetic gives bit-identical values.
  return tf.cast(clips_u8, tf.float32) / 255.0


def train_dataset(store: framestore.FrameStore, plan: clips.TrainPlan, start_step: int = 0):
  """Endless dataset of {'clips': f32 (b, T, H, W, C)} from `start_step`."""
  tf = tf_module()
  shape = (plan.local_batch_size, plan.temporal) + store.frames.shape[1:]

  def gather(step):
    return store.frames[plan.frame_indices(int(step))]

  def load(step):
    frames = tf.numpy_function(gather, [step], tf.uint8, stateful=False)
    return {"clips": _to_float(tf, tf.ensure_shape(frames, shape))}

  ds = tf.data.Dataset.range(start_step, _ENDLESS)
  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(store: framestore.FrameStore, plan: clips.EvalPlan):
  """Finite tf.data.Dataset of padded evaluation batches, in frame order."""
  tf = tf_module()
  shape = (plan.batch_size, plan.temporal) + store.frames.shape[1:]
  keys = ("video", "frame", "label", "valid")

  def gather(i):
    batch = plan.batch(int(i))
    return (store.frames[batch["indices"]],) + tuple(batch[k] for k in keys)

  def load(i):
    out = tf.numpy_function(gather, [i], [tf.uint8, tf.int32, tf.int32, tf.int32, tf.bool], stateful=False)
    batch = {k: tf.ensure_shape(t, (plan.batch_size,)) for k, t in zip(keys, out[1:])}
    batch["clips"] = _to_float(tf, tf.ensure_shape(out[0], shape))
    return batch

  ds = tf.data.Dataset.range(plan.num_batches)
  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def as_numpy(ds) -> Iterator[dict[str, np.ndarray]]:
  return iter(ds.as_numpy_iterator())
