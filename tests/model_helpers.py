"""Small models, variables and test stores shared by the tests of several packages."""

from collections.abc import Callable
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import framestore

# Parameter counts of the published PyTorch code's nine networks at latent 512, RGB.
REFERENCE_COUNTS = {
  "maskedskip_unet": 115_811_792,
  "autoencoder": 75_938_064,
  "unet": 89_600_528,
  "conv3d_skip_unet": 115_811_792,
  "masked2d_skip_unet": 98_338_256,
  "ed_masks_skip_unet": 115_811_792,
  "one_mask": 96_678_928,
  "two_mask": 106_312_976,
  "three_mask": 112_260_496,
}

# Video lengths chosen so batches straddle videos, a video is shorter than T and than the batch, and one is empty.
STREAM_LENGTHS = (7, 1, 0, 2, 11)
# The test store of make_store: three labelled videos, one of them single-class.
STORE_SIZE = (32, 32)
STORE_LENGTHS = (12, 9, 10)
STORE_NAMES = ("Test001", "Test002", "Test003")
STORE_MASK_SIZE = (48, 40)  # masks come at the original resolution


def init_shapes(model, hw=(32, 32)):
  """The model's variables as shapes only (no compile)."""
  x = jnp.zeros((1, model.temporal, *hw, model.channels))
  return jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))


def random_variables(model, seed=0):
  """Every leaf random (batch statistics too), drawn in numpy: cheaper than model.init's compile."""
  x = np.zeros((1, model.temporal, 16, 16, model.channels), np.float32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name in ("scale", "var"):
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    bound = 1 / np.sqrt(np.prod(leaf.shape[:-1])) if name.endswith("kernel") else 0.1
    return rng.uniform(-bound, bound, leaf.shape).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _jit_apply(model, variables, x, rngs, options):
  return model.apply(variables, x, rngs=rngs, **dict(options))


def jit_apply(model, variables, x, rngs=None, **options):
  """model.apply(variables, x, rngs=rngs, **options) compiled as one program.

  Op by op, a CPU compiles one kernel per op and shape: 10 s and more for one forward of the tiny UNets; jitted, the
  forward compiles in a second or two (once per model and options in a process, and from the persistent compilation
  cache on reruns). Options (train, mutable, return_mask, method, ...) are static; lists are passed as tuples.
  """
  frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
  return _jit_apply(model, variables, x, rngs, frozen)


def centre_clips(videos, temporal):
  """The eval protocol written out plainly: clip c of a video is frames c-h..c+h, clamped into the video."""
  h = (temporal - 1) // 2
  clips = []
  for video in videos:
    n = len(video)
    for c in range(n):
      clips.append(video[np.clip(np.arange(c - h, c + h + 1), 0, n - 1)])
  return np.stack(clips).astype(np.float32) / 255.0


@dataclasses.dataclass
class Record:
  name: str
  labels: np.ndarray | None
  mask_loader: Callable[[], np.ndarray] | None = None


def make_store(with_labels=True):
  """(frame store, labels, masks) of three random grey videos with labelled anomalies and pixel masks."""
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (sum(STORE_LENGTHS), *STORE_SIZE, 1), dtype=np.uint8)
  labels = [np.zeros(n, np.uint8) for n in STORE_LENGTHS]
  labels[0][5:9] = 1
  labels[1][:] = 1  # a single-class video, excluded from the macro AUC
  labels[2][:4] = 1
  masks = []
  for y in labels:
    m = np.zeros((len(y), *STORE_MASK_SIZE), np.uint8)
    m[y == 1, 10:30, 8:24] = 255
    masks.append(m)
  records = [
    Record(name, y if with_labels else None, (lambda m=m: m) if v != 1 else None)
    for v, (name, y, m) in enumerate(zip(STORE_NAMES, labels, masks))
  ]
  return framestore.FrameStore(frames, STORE_LENGTHS, records), labels, masks
