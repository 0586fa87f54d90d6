"""Normal footage the model does not train on: a held-out share of the training split.

An alarm threshold set on the frames a model trained on is set too low (they reconstruct better than any new
footage), so the threshold is calibrated on training videos kept out of training. The rule is deterministic and
needs no file of its own: the last ceil(share * N) of the split's N videos in their listed order (at least one
video is always trained on); a split of a single video gives up the last ceil(share * n) of its n frames instead,
so that a one-camera, one-recording dataset can still be calibrated.
"""

import dataclasses
import math

from data_pipeline.errors import UserError
from data_pipeline.framestore import FrameStore


@dataclasses.dataclass(frozen=True)
class _Part:
  """The record of a video's tail when a single training video is split: no labels, no masks."""

  name: str
  labels: None = None
  mask_loader: None = None


def _check_share(share: float) -> None:
  if not 0 <= share < 1:
    raise UserError(f"data.holdout_share: expected a fraction in [0, 1), got {share}")


def split(store: FrameStore, share: float) -> tuple[FrameStore, FrameStore | None]:
  """(the frames to train on, the held-out frames or None when share is 0)."""
  _check_share(share)
  if share == 0:
    return store, None
  records = [_Part(name) for name in store.video_names]
  if store.num_videos >= 2:
    held = min(store.num_videos - 1, math.ceil(share * store.num_videos))
    keep = store.num_videos - held
    cut = int(store.offsets[keep])
    return (
      FrameStore(store.frames[:cut], store.lengths[:keep], records[:keep], store.path),
      FrameStore(store.frames[cut:], store.lengths[keep:], records[keep:], store.path),
    )
  n = store.num_frames(0)
  held = math.ceil(share * n)
  if held >= n:
    raise UserError(f"data.holdout_share={share}: the one training video ({n} frames) would be held out whole")
  name = store.video_names[0]
  return (
    FrameStore(store.frames[: n - held], [n - held], [_Part(name)], store.path),
    FrameStore(store.frames[n - held :], [held], [_Part(f"{name} (last {held} frames)")], store.path),
  )


def describe(store: FrameStore, share: float) -> dict:
  """How the held-out part was chosen, for reports and the bundle: share, videos and frame counts."""
  train, held = split(store, share)
  return {
    "share": share,
    "rule": "the last ceil(share * N) training videos; a single video gives up its last ceil(share * n) frames",
    "videos": [] if held is None else held.video_names,
    "frames": 0 if held is None else held.total_frames,
    "training_frames": train.total_frames,
  }
