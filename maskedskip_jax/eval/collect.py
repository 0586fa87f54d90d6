"""What evaluation gathers from the streaming scorer, video by video: frame scores, score maps and mp4s.

Score maps are kept (reduced to the pixel-metric grid) only for videos that have pixel masks, so memory
grows with the masked test frames, not with the whole test set; `pixel_report` turns them into pixel AUROC
and RBDC/TBDC with the reduction protocol written beside the numbers.
"""

import os
import re
from typing import Any

import cv2
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import metrics
from maskedskip_jax.eval import overlay
from maskedskip_jax.eval import region_metrics
from maskedskip_jax.eval import streaming


def safe_name(name: str) -> str:
  return re.sub(r"[^\w.-]", "_", name)


def reduce_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """A mask at `size` (h, w): a pixel is anomalous when at least half of the area it covers is."""
  if mask.shape == size:
    return mask != 0
  cover = cv2.resize((mask != 0).astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)
  return cover >= 0.5


class Collector:
  """Gathers the scorer's per-frame output video by video: scores, reduced maps for videos with masks, mp4s."""

  def __init__(self, store, out_dir: str, grid, write_videos: bool, pixel_metrics: bool):
    self.store, self.out_dir, self.grid = store, out_dir, grid
    self.write_videos, self.pixel_metrics = write_videos, pixel_metrics
    self.scores = [[] for _ in range(store.num_videos)]
    self.mask_scores = [[] for _ in range(store.num_videos)]  # stay empty for a model without a mask head
    self.maps, self.masks = [], []
    self._video, self._maps, self._sink = None, [], None

  def add(self, item: streaming.ScoredFrame) -> None:
    if item.video != self._video:
      self.finish()
      self._video = item.video
      if self.write_videos:
        name = safe_name(self.store.video_names[item.video])
        self._sink = overlay.VideoSink(os.path.join(self.out_dir, "videos", f"{name}.mp4"))
    self.scores[item.video].append(item.score)
    if item.mask_score is not None:
      self.mask_scores[item.video].append(item.mask_score)
    score_map = item.score_map
    if self._sink is not None:
      frame = self.store.video_frames(item.video)[item.frame]
      self._sink.write(overlay.triptych(frame, item.recon, score_map))
    if self.pixel_metrics:
      if score_map.shape != self.grid:
        score_map = cv2.resize(score_map, (self.grid[1], self.grid[0]), interpolation=cv2.INTER_AREA)
      self._maps.append(score_map.astype(np.float32))

  def finish(self) -> None:
    """Closes the current video: its mp4, and its maps kept only if it has masks."""
    if self._sink is not None:
      self._sink.close()
      self._sink = None
    if self._video is not None and self.pixel_metrics:
      masks = self.store.masks(self._video)
      if masks is not None:
        if len(masks) != len(self._maps):
          raise UserError(
            f"test video {self.store.video_names[self._video]}: {len(masks)} pixel masks for {len(self._maps)} frames"
          )
        self.maps.append(np.stack(self._maps))
        self.masks.append(np.stack([reduce_mask(m, self.grid) for m in masks]))
    self._maps = []


def pixel_report(maps, masks, grid, region_thresholds: int) -> dict[str, Any]:
  pixel = metrics.pixel_auroc(maps, masks)
  region = region_metrics.region_metrics(maps, masks, num_thresholds=region_thresholds)
  return {
    **pixel,
    "rbdc": region["rbdc"],
    "tbdc": region["tbdc"],
    "region": region,
    "num_videos_with_masks": len(maps),
    "resolution": list(grid),
    "protocol": (
      f"score maps and masks at {grid[0]}x{grid[1]} (reduced for speed): maps reduced by area "
      "means (antialiased bilinear where sizes do not divide), a mask pixel anomalous when >= 50% "
      f"of its area is; RBDC/TBDC over {region_thresholds} evenly spaced thresholds, box IoU >= 0.1, "
      "track alpha 0.1, FP/frame range [0, 1]"
    ),
  }
