"""Scoring with a bundle's ONNX graphs (`onnx_export.py`): numpy and onnxruntime only, no jax, flax or model code.

Nothing here imports jax, directly or through another module, so `predict --backend onnxruntime` runs where jax is
not installed. For the same reason the bundle is read here rather than with `bundle.py` (which imports jax): only
the manifest, model.json and the two graphs, each checked against the manifest's sha256 before it is used.

`OnnxScorer.stream` gives what `eval/streaming.StreamingScorer.stream` gives, computed the same way: each frame is
encoded once, every frame is the centre of one clip, and frames beyond a video's ends are its first/last frame. Its
bookkeeping is plain host dicts (the features of the frames that pending clips still need) rather than a device
ring: onnxruntime has no device state to keep.
"""

from collections.abc import Iterable, Iterator
import dataclasses
import os

import numpy as np

from maskedskip_jax.deploy import bundle_files
from maskedskip_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class ScoredFrame:
  """One scored frame, as `streaming.ScoredFrame`: score_map (H, W) float32 at the model's image size."""

  video: int
  frame: int
  score: float
  score_map: np.ndarray


def read_bundle(bundle_dir: str) -> tuple[dict, bytes, bytes]:
  """(model.json's contents, encode graph, decode graph) of a bundle, every file checked against the manifest."""
  files = bundle_files.manifest(bundle_dir)
  config = bundle_files.read_json(
    os.path.join(bundle_dir, bundle_files.CONFIG_FILE),
    bundle_files.read_verified(bundle_dir, bundle_files.CONFIG_FILE, files),
  )
  graphs = config.get("onnx")
  if not graphs:
    raise UserError(
      f"{bundle_dir}: has no ONNX graphs; re-export it with jax2onnx installed (pip install 'maskedskip_jax[onnx]')"
    )
  if not config.get("image_size"):
    raise UserError(f"{bundle_dir}: model.json has no image_size; re-export the bundle with one")
  return config, *(bundle_files.read_verified(bundle_dir, graphs[half]["file"], files) for half in ("encode", "decode"))


class OnnxScorer:
  """Scores every frame of a stream of videos with a bundle's ONNX graphs; the batch is the graphs' own."""

  def __init__(self, bundle_dir: str, patch: int | None = None):
    try:
      import onnxruntime as ort  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise UserError("--backend onnxruntime: onnxruntime is not installed (pip install onnxruntime)") from None
    config, encode, decode = read_bundle(bundle_dir)
    self.temporal = int(config["temporal"])
    self.channels = int(config["channels"])
    self.image_size = tuple(int(s) for s in config["image_size"])
    self.batch_size = int(config["onnx"]["batch"])
    self.half = (self.temporal - 1) // 2
    # The decode graph scores with the patch it was exported with; another (an alarm calibrated with its own) is
    # computed here from the graph's score map, as `nn/scoring.frame_scores` does.
    self.patch = int(config["onnx"].get("patch", bundle_files.DEFAULT_PATCH)) if patch is None else int(patch)
    self._own_patch = self.patch != int(config["onnx"].get("patch", bundle_files.DEFAULT_PATCH))
    if self.patch < 1 or self.patch > min(self.image_size):
      raise UserError(f"{bundle_dir}: frame-score patch {self.patch} does not fit {self.image_size} frames")
    # The CPU provider, the one the export checked the graphs with: GPUs are the jax backend's job, and onnxruntime's
    # CUDA provider may compute float32 convolutions in TF32.
    providers = ["CPUExecutionProvider"]
    try:
      self._encode = ort.InferenceSession(encode, providers=providers)
      self._decode = ort.InferenceSession(decode, providers=providers)
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f"{bundle_dir}: onnxruntime cannot load its ONNX graphs ({type(e).__name__})") from None
    self._feat_names = [i.name for i in self._decode.get_inputs() if i.name != "target"]
    graph_input = tuple(self._encode.get_inputs()[0].shape)
    if graph_input != (self.batch_size, *self.frame_shape):
      raise UserError(f"{bundle_dir}: its ONNX graphs take {graph_input}, model.json says {self.frame_shape} frames")

  @property
  def frame_shape(self) -> tuple[int, int, int]:
    return (*self.image_size, self.channels)

  def stream(self, videos: Iterable[Iterable[np.ndarray]]) -> Iterator[ScoredFrame]:
    """Yields a `ScoredFrame` for every frame of every video (uint8 (H, W, C) frames), in order, lazily."""
    for v, frames in enumerate(videos):
      yield from self._video(v, frames)

  def _video(self, v: int, frames: Iterable[np.ndarray]) -> Iterator[ScoredFrame]:
    b, h = self.batch_size, self.half
    inputs, feats, todo = {}, {}, []  # frame index -> model input / its features; frames not yet encoded
    n = done = 0  # frames read; clips scored (centres 0..done-1)
    for n, frame in enumerate(frames, start=1):
      frame = np.asarray(frame)
      if frame.shape != self.frame_shape or frame.dtype != np.uint8:
        raise UserError(f"video {v} frame {n - 1}: expected uint8 {self.frame_shape}, got {frame.dtype} {frame.shape}")
      # Division, as the training pipeline and the jax scorer do: the same float32 inputs.
      inputs[n - 1] = frame.astype(np.float32) / np.float32(255.0)
      todo.append(n - 1)
      if len(todo) == b:
        self._encode_frames(todo, inputs, feats)
        todo = []
        while n - h - done >= b:  # b clips whose last frame is encoded
          yield from self._decode_clips(v, range(done, done + b), n - 1, inputs, feats)
          done += b
          for k in [k for k in feats if k < done - h]:  # no pending clip reaches back further
            del feats[k], inputs[k]
    if todo:
      self._encode_frames(todo, inputs, feats)
    while done < n:
      centres = range(done, min(done + b, n))
      yield from self._decode_clips(v, centres, n - 1, inputs, feats)
      done += len(centres)

  def _encode_frames(self, indices: list[int], inputs: dict, feats: dict) -> None:
    batch = np.zeros((self.batch_size, *self.frame_shape), np.float32)  # padding rows are computed and dropped
    for i, k in enumerate(indices):
      batch[i] = inputs[k]
    levels = self._encode.run(None, {self._encode.get_inputs()[0].name: batch})
    for i, k in enumerate(indices):
      feats[k] = tuple(level[i] for level in levels)

  def _decode_clips(self, v: int, centres: range, last: int, inputs: dict, feats: dict) -> Iterator[ScoredFrame]:
    """Scores the clips centred on `centres`; frame j of a clip is clamped into 0..last (`last` is the video's
    last frame once it ended, and beyond every window otherwise)."""
    b, t, h = self.batch_size, self.temporal, self.half
    target = np.zeros((b, *self.frame_shape), np.float32)
    windows = [np.zeros((b, t, *f.shape), np.float32) for f in feats[centres[0]]]
    for i, c in enumerate(centres):
      target[i] = inputs[c]
      for d, j in enumerate(range(c - h, c + h + 1)):
        for window, f in zip(windows, feats[min(max(j, 0), last)]):
          window[i, d] = f
    maps, scores = self._decode.run(["score_map", "score"], {"target": target, **dict(zip(self._feat_names, windows))})
    for i, c in enumerate(centres):
      score = patch_score(maps[i], self.patch) if self._own_patch else float(scores[i])
      yield ScoredFrame(v, c, score, maps[i])


def patch_score(score_map: np.ndarray, patch: int) -> float:
  """A (H, W) score map's frame score, as `nn/scoring.frame_scores`: the largest patch mean on the aligned grid and
  the grid shifted by half a patch."""
  m = np.asarray(score_map, np.float32)
  best = -np.inf
  for offset in sorted({0, patch // 2}):
    h, w = (m.shape[0] - offset) // patch, (m.shape[1] - offset) // patch
    if h and w:
      tiles = m[offset : offset + h * patch, offset : offset + w * patch].reshape(h, patch, w, patch)
      best = max(best, float(tiles.mean(axis=(1, 3), dtype=np.float32).max()))
  return best
