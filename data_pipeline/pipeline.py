"""The data API used by training and evaluation (see docs/CONTRACTS.md, Data).

  store = load_split('ucsd_ped2', root, 'train', image_size=(256, 256),
                     channels=3, cache_dir='/tmp/frames')
  it = train_iterator(store, global_batch_size=16, temporal=3, seed=0)
  next(it)['clips']  # float32 (16, 3, 256, 256, 3) in [0, 1]

Backends: 'tfdata' (default when TensorFlow imports) or 'grain'; both give
bit-identical batches, so a run can switch backend and still resume exactly.
"""

from collections.abc import Iterator
import functools
import numbers
import os

from absl import logging

from data_pipeline import clips
from data_pipeline import framestore
from data_pipeline import registry
from data_pipeline.errors import UserError

FrameStore = framestore.FrameStore
BACKENDS = ("tfdata", "grain")


def _image_size(image_size) -> tuple[int, int]:
  if isinstance(image_size, numbers.Integral):
    image_size = (image_size, image_size)
  try:
    height, width = (int(s) for s in image_size)
  except (TypeError, ValueError):
    raise UserError(f"image_size must be an int or (H, W), got {image_size!r}.") from None
  return height, width


def load_split(
  name: str,
  root: str | None,
  split: str,
  image_size=(256, 256),
  channels: int = 3,
  cache_dir: str | None = None,
  tfds_data_dir: str | None = None,
) -> FrameStore:
  """Frames of one split of dataset `name`, decoded once into a FrameStore.

  Args:
    name: a `data_pipeline.registry` dataset name ('ucsd_ped2', 'generic', ...).
    root: the dataset's folder (ignored when `tfds_data_dir` is given).
    split: 'train' or 'test'.
    image_size: (H, W) or one int for square frames.
    channels: 1 (grey) or 3 (RGB); grey sources are replicated to 3.
    cache_dir: where decoded stores are cached and memory-mapped; None keeps
      the store in memory.
    tfds_data_dir: read the TFDS dataset `name` built there by
      `data_pipeline.tfds_builders` instead of the raw files in `root`.
  """
  size = _image_size(image_size)
  if tfds_data_dir is not None:
    from data_pipeline.tfds_builders import reader  # pylint: disable=g-import-not-at-top

    records, read, tag = reader.list_videos(name, split, tfds_data_dir)
    return framestore.build(records, size, channels, cache_dir, tag, reader=read)
  if root is None:
    raise UserError(f"Dataset {name!r}: a root folder is required.")
  videos = registry.list_videos(name, root, split)
  tag = ("files", name, os.path.abspath(root), split)
  return framestore.build(videos, size, channels, cache_dir, tag)


def _windows(store: FrameStore, temporal: int, stride: int):
  return clips.train_windows(store.lengths, temporal, stride, names=store.video_names)


def steps_per_epoch(store: FrameStore, global_batch_size: int, temporal: int, stride: int = 1) -> int:
  """Global batches per epoch (windows that do not fill a batch are dropped)."""
  return clips.steps_per_epoch(len(_windows(store, temporal, stride)), global_batch_size)


@functools.cache
def _tensorflow_importable() -> bool:
  try:
    import tensorflow  # noqa: F401  (importability is the question)
  except ImportError:
    return False
  return True


def resolve_backend(backend: str | None) -> str:
  """'tfdata' or 'grain'; None / 'auto' prefers tf.data when TF is installed."""
  if backend in (None, "auto"):
    if _tensorflow_importable():
      return "tfdata"
    logging.warning("TensorFlow is not importable; streaming with Grain.")
    return "grain"
  if backend not in BACKENDS:
    raise UserError(f"Unknown data backend {backend!r}; expected one of {BACKENDS} or 'auto'.")
  return backend


def train_iterator(
  store: FrameStore,
  global_batch_size: int = 16,
  temporal: int = 3,
  stride: int = 1,
  seed: int = 0,
  start_step: int = 0,
  process_index: int = 0,
  process_count: int = 1,
  backend: str | None = "tfdata",
) -> Iterator[dict]:
  """Endless {'clips': f32 (global_batch_size // process_count, T, H, W, C)}.

  Step s is the same global batch for a given seed whatever the backend or
  the number of processes; process i yields rows [i*b, (i+1)*b) of it.
  """
  if start_step < 0:
    raise UserError(f"start_step must be >= 0, got {start_step}.")
  backend = resolve_backend(backend)
  plan = clips.TrainPlan(
    _windows(store, temporal, stride), global_batch_size, temporal, seed, process_index, process_count
  )
  if backend == "grain":
    from data_pipeline import grain_backend  # pylint: disable=g-import-not-at-top

    return grain_backend.train_iterator(store, plan, start_step)
  from data_pipeline import tfdata  # pylint: disable=g-import-not-at-top

  return tfdata.as_numpy(tfdata.train_dataset(store, plan, start_step))


def eval_iterator(
  store: FrameStore, batch_size: int = 32, temporal: int = 3, backend: str | None = "tfdata"
) -> Iterator[dict]:
  """Every frame as the centre of one clip, in order; see clips.EvalPlan."""
  backend = resolve_backend(backend)
  labels = [store.labels(v) for v in range(store.num_videos)]
  plan = clips.EvalPlan(store.lengths, batch_size, temporal, labels)
  if backend == "grain":
    from data_pipeline import grain_backend  # pylint: disable=g-import-not-at-top

    return grain_backend.eval_iterator(store, plan)
  from data_pipeline import tfdata  # pylint: disable=g-import-not-at-top

  return tfdata.as_numpy(tfdata.eval_dataset(store, plan))


def eval_num_batches(store: FrameStore, batch_size: int) -> int:
  """Batches `eval_iterator` yields (for progress bars)."""
  return -(-store.total_frames // batch_size)
