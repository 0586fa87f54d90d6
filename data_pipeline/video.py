"""The record every dataset source yields: one video, its frames and its ground truth."""

from collections.abc import Callable
import dataclasses
import os

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Video:
  """One video of a split, as found on disk; frames are read later by `frame_io`.

  Attributes:
    name: unique within its split ('Test001', '01_0014', '21').
    num_frames: decodable frames (container videos are counted by decoding).
    frame_paths: one image file per frame, in frame order; None for containers.
    video_path: an .avi/.mp4 file; None for frame folders.
    labels: uint8 (num_frames,), 1 = anomalous frame; None when unknown.
    mask_loader: returns uint8 (num_frames, H, W), nonzero = anomalous pixel.
      A callable because pixel masks of a whole test set do not fit in memory.
  """

  name: str
  num_frames: int
  frame_paths: tuple[str, ...] | None = None
  video_path: str | None = None
  labels: np.ndarray | None = None
  mask_loader: Callable[[], np.ndarray] | None = None

  def __post_init__(self):
    # These are programming errors of a source, not user mistakes: sources
    # check the files (and name them) before building a Video.
    if (self.frame_paths is None) == (self.video_path is None):
      raise ValueError(f"Video {self.name!r}: set exactly one of frame_paths and video_path.")
    if self.num_frames <= 0:
      raise ValueError(f"Video {self.name!r}: num_frames must be positive.")
    if self.frame_paths is not None:
      if not isinstance(self.frame_paths, tuple):
        object.__setattr__(self, "frame_paths", tuple(self.frame_paths))
      if len(self.frame_paths) != self.num_frames:
        raise ValueError(f"Video {self.name!r}: {len(self.frame_paths)} frame paths for num_frames={self.num_frames}.")
    if self.labels is not None:
      labels = np.asarray(self.labels)
      if labels.shape != (self.num_frames,) or labels.dtype != np.uint8:
        raise ValueError(
          f"Video {self.name!r}: labels must be uint8 ({self.num_frames},), got {labels.dtype} {labels.shape}."
        )
      # A frozen record should not change under the pipeline's feet.
      labels = labels.copy()
      labels.setflags(write=False)
      object.__setattr__(self, "labels", labels)

  @property
  def is_container(self) -> bool:
    """True when frames come from a video file rather than image files."""
    return self.video_path is not None

  @property
  def source_path(self) -> str:
    """The file or folder holding the frames, for messages and cache keys."""
    if self.video_path is not None:
      return self.video_path
    return os.path.dirname(self.frame_paths[0])
