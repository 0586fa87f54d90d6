"""Pictures of anomaly scores: heat-map overlays, the running score curve, and the .mp4 writer for both.

Everything here is RGB uint8 (OpenCV's BGR appears only inside `VideoSink`). Heat maps use a fixed scale
(`vmax`) rather than each frame's own maximum: a per-frame scale would paint every normal frame's noise as hot.
"""

import os

import cv2
import numpy as np

from maskedskip_jax.errors import UserError

DEFAULT_VMAX = 0.3  # score-map value drawn fully hot; map values lie in [0, 1], normal frames mostly below 0.1
CURVE_BG = (32, 32, 32)
CURVE_FG = (80, 200, 255)
MARKER = (255, 80, 80)


def to_rgb(image: np.ndarray) -> np.ndarray:
  """uint8 RGB (H, W, 3) from grey/RGB, uint8 or float in [0, 1], (H, W), (H, W, 1) or (H, W, 3)."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = np.clip(np.rint(image.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
  if image.ndim == 3 and image.shape[2] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=2)
  if image.ndim != 3 or image.shape[2] != 3:
    raise UserError(f"overlay: expected a grey or RGB image, got shape {image.shape}")
  return image


def heatmap(score_map: np.ndarray, vmax: float = DEFAULT_VMAX) -> np.ndarray:
  """A (H, W) score map as an RGB jet-colour image, 0 blue to >= vmax red."""
  level = np.clip(np.asarray(score_map, np.float32) / vmax, 0.0, 1.0)
  bgr = cv2.applyColorMap(np.rint(level * 255).astype(np.uint8), cv2.COLORMAP_JET)
  return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def blend(frame: np.ndarray, score_map: np.ndarray, vmax: float = DEFAULT_VMAX, alpha: float = 0.6) -> np.ndarray:
  """The frame with the heat map laid over it, resized to the frame (bilinear).

  Opacity grows with the score (up to `alpha` at vmax), so normal regions stay visible as they are.
  """
  frame = to_rgb(frame)
  h, w = frame.shape[:2]
  score_map = np.asarray(score_map, np.float32)
  if score_map.shape != (h, w):
    score_map = cv2.resize(score_map, (w, h), interpolation=cv2.INTER_LINEAR)
  weight = alpha * np.clip(score_map / vmax, 0.0, 1.0)[..., None]
  mixed = frame.astype(np.float32) * (1.0 - weight) + heatmap(score_map, vmax).astype(np.float32) * weight
  return np.rint(mixed).astype(np.uint8)


def triptych(frame: np.ndarray, recon: np.ndarray, score_map: np.ndarray, vmax: float = DEFAULT_VMAX) -> np.ndarray:
  """input | reconstruction | difference heat map, side by side (the reference visualiser's layout)."""
  frame, recon = to_rgb(frame), to_rgb(recon)
  return np.concatenate([frame, recon, heatmap(score_map, vmax)], axis=1)


class ScoreCurve:
  """The running score curve drawn in a strip under each frame.

  With the video's length known (`total` > 0) the x axis spans the whole video and each pixel column keeps the
  highest score that falls in it, so drawing costs O(width) per frame however long the video is. Without it the
  strip scrolls, one pixel per frame. The y axis runs from 0 to the largest score seen so far.
  """

  def __init__(self, width: int, height: int, total: int | None = None):
    self.width, self.height = int(width), int(height)
    self.total = int(total) if total else 0
    self.columns = np.full(self.width, np.nan, np.float32)
    self.count = 0
    self.peak = 0.0

  def add(self, score: float) -> None:
    score = float(score)
    self.peak = max(self.peak, score)
    if self.total:
      col = min(self.count * self.width // self.total, self.width - 1)
      self.columns[col] = score if np.isnan(self.columns[col]) else max(self.columns[col], score)
    else:
      self.columns = np.roll(self.columns, -1)
      self.columns[-1] = score
    self.count += 1

  def draw(self) -> np.ndarray:
    strip = np.empty((self.height, self.width, 3), np.uint8)
    strip[:] = CURVE_BG
    xs = np.nonzero(~np.isnan(self.columns))[0]
    if len(xs):
      top = self.peak * 1.1 if self.peak > 0 else 1.0
      margin = 2
      ys = (self.height - 1 - margin) - self.columns[xs] / top * (self.height - 1 - 2 * margin)
      points = np.stack([xs, np.rint(ys)], axis=1).astype(np.int32)
      cv2.polylines(strip, [points.reshape(-1, 1, 2)], False, CURVE_FG, 1, cv2.LINE_AA)
      cv2.circle(strip, tuple(int(p) for p in points[-1]), 2, MARKER, -1, cv2.LINE_AA)
    return strip


def overlay_frame(
  frame: np.ndarray, score_map: np.ndarray, curve: ScoreCurve, vmax: float = DEFAULT_VMAX
) -> np.ndarray:
  """The blended frame with the score curve strip underneath; `curve` must already hold this frame's score."""
  return np.concatenate([blend(frame, score_map, vmax), curve.draw()], axis=0)


class VideoSink:
  """Writes RGB frames to an .mp4 ('mp4v'), padding odd sizes to even ones (the encoder drops odd rows/columns).

  The first frame fixes the size; every later frame must match it.
  """

  def __init__(self, path: str, fps: float = 25.0):
    self.path, self.fps = path, float(fps) if fps and fps > 0 else 25.0
    self._writer, self._shape, self.count = None, None, 0

  def write(self, rgb: np.ndarray) -> None:
    rgb = to_rgb(rgb)
    h, w = rgb.shape[:2]
    if self._writer is None:
      self._shape = rgb.shape
      size = (w + w % 2, h + h % 2)
      os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
      self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
      if not self._writer.isOpened():
        raise UserError(f"{self.path}: cannot open an mp4v video writer here")
    elif rgb.shape != self._shape:
      raise UserError(f"{self.path}: frame {self.count} has shape {rgb.shape}, earlier frames {self._shape}")
    if h % 2 or w % 2:
      rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    self.count += 1

  def close(self) -> None:
    if self._writer is not None:
      self._writer.release()
      self._writer = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
