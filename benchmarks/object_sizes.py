r"""How big the moving objects of a dataset are at a config's frame size: the check behind a token size.

  python3 benchmarks/object_sizes.py --config=configs/aed_mae_ped2.py --workdir=runs/object_sizes \
      --tokens=4,8,16 [--split=train]

AED-MAE rebuilds each dropped d x d token from the tokens around it. Where a token is as big as a whole object,
nothing of the object is left in its context, so every object (a walker as much as a cyclist) comes back as
background and the error measures how many objects there are, not whether they are normal. This script reads
the split through the config's frame store (its resolution and channels), takes each video's per-pixel median as
its background, marks pixels more than --threshold grey levels from it, and measures the bounding box of each
connected blob of at least --min-area pixels in every --every-th frame. It reports the blobs' height and width
percentiles, and for each token side d the share of blobs that fit inside one d x d token (height and width
<= d). Blobs merge where objects touch, so the sizes are upper bounds for crowds. Not a speed figure.

Prints one JSON object and writes it to --json (default WORKDIR/object_sizes.json) by temp + rename.
"""

import json
import os
import sys

from absl import app
from absl import flags
import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (ROOT,) if p not in sys.path]

from maskedskip_jax import app as app_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax import atomic  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.errors import UserError  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import inputs as train_data  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = None  # defined in __main__, after the keys are checked: config_flags applies overrides then
_SPLIT = flags.DEFINE_enum("split", "train", ["train", "test"], "Which split's videos to measure.")
_TOKENS = flags.DEFINE_string("tokens", "4,8,16", "Comma-separated token sides d to report the fit share for.")
_THRESHOLD = flags.DEFINE_float("threshold", 25.0, "Grey levels from the median background that mark a pixel.")
_MIN_AREA = flags.DEFINE_integer("min_area", 6, "Smallest blob, in pixels at the config's frame size.")
_EVERY = flags.DEFINE_integer("every", 10, "Measure every n-th frame of each video.")
_JSON = flags.DEFINE_string("json", None, "Where the figures go; default WORKDIR/object_sizes.json.")


def parse_tokens(text: str) -> list[int]:
  try:
    tokens = [int(t) for t in text.split(",") if t.strip()]
  except ValueError:
    tokens = []
  if not tokens or min(tokens) < 1:
    raise UserError(f"--tokens: expected comma-separated positive integers, got {text!r}")
  return tokens


def blob_boxes(frames: np.ndarray, threshold: float, min_area: int, every: int) -> np.ndarray:
  """(k, 2) heights and widths of the moving blobs in every `every`-th frame of one video's uint8 (n, H, W, C)."""
  grey = frames.astype(np.float32).mean(axis=-1)
  background = np.median(grey, axis=0)
  boxes = []
  for frame in grey[::every]:
    moving = (np.abs(frame - background) > threshold).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
    boxes.extend((s[cv2.CC_STAT_HEIGHT], s[cv2.CC_STAT_WIDTH]) for s in stats[1:] if s[cv2.CC_STAT_AREA] >= min_area)
  return np.asarray(boxes, np.int64).reshape(-1, 2)


def summarise(boxes: np.ndarray, tokens: list[int]) -> dict:
  """Percentiles of the blobs' heights and widths, and the share of blobs inside one d x d token for each d."""
  if not len(boxes):
    return {"blobs": 0}
  h, w = boxes[:, 0], boxes[:, 1]
  pct = lambda x: {f"p{p}": float(np.percentile(x, p)) for p in (25, 50, 75)}
  return {
    "blobs": len(boxes),
    "height": pct(h),
    "width": pct(w),
    "fits_in_one_token": {str(d): round(float(np.mean((h <= d) & (w <= d))), 3) for d in tokens},
  }


def run(
  config, workdir: str, json_path: str, split: str, tokens: list[int], *, threshold: float, min_area: int, every: int
) -> dict:
  if every < 1 or min_area < 1:
    raise UserError(f"--every and --min_area must be >= 1, got {every} and {min_area}")
  store = train_data.load_split(config, workdir, split, all_processes=False)
  per_video, everything = {}, []
  for v, name in enumerate(store.video_names):
    boxes = blob_boxes(store.video_frames(v), threshold, min_area, every)
    per_video[name] = summarise(boxes, tokens)
    everything.append(boxes)
  record = {
    "what": "bounding boxes of moving blobs against each video's median background, at the config's frame size",
    "dataset": config.data.name,
    "data_root": config.data.root,
    "split": split,
    "image_size": list(store.image_size),
    "threshold": threshold,
    "min_area": min_area,
    "every": every,
    "config_token": int(config.model.aed_mae.patch),
    "all": summarise(np.concatenate(everything) if everything else np.zeros((0, 2), np.int64), tokens),
    "videos": per_video,
  }
  atomic.write_json(json_path, record)
  return record


def main(argv) -> None:
  workdir = app_lib.script_workdir(argv)
  json_path = os.path.abspath(os.path.expanduser(_JSON.value or os.path.join(workdir, "object_sizes.json")))
  try:
    settings = dict(threshold=_THRESHOLD.value, min_area=_MIN_AREA.value, every=_EVERY.value)
    record = run(
      app_lib.load_config(_CONFIG), workdir, json_path, _SPLIT.value, parse_tokens(_TOKENS.value), **settings
    )
  except UserError as e:
    app_lib.fail(e)
  print(json.dumps(record["all"], indent=1))
  print(f"wrote {json_path}")


if __name__ == "__main__":
  _CONFIG = app_lib.define_config_flag(sys.argv, os.path.join(ROOT, "configs", "aed_mae_ped2.py"))
  app.run(main)
