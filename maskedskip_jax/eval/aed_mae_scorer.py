"""AED-MAE's frame scores for whole videos, as its paper scores them (Eq. 6 and what follows it; issue #18 item 4).

Each frame t is fed as the model was trained: frames t - offset, t, t + offset stacked on the channel axis (indices
clamped into the video, so every frame is scored, as the U-Net's evaluation does), in [0, 1]. The Eq. 6 map
o_t = alpha ||x - x_hat||^2 + beta ||x_hat - x_tilde||^2 + gamma y_hat (`aed_mae_losses.pixel_scores`) of every
frame goes through the 3-D mean filter over the video's (T, H, W) volume, then the frame maximum, then the
temporal Gaussian: the frame score. Each term is also scored alone through the same filters (`COMPONENTS`), so a
report can show what the teacher's error, the teacher-student gap and the classifier each contribute.

Test-time masking (`MASKING`). The teacher is trained on every token (Eq. 3 sums over all n), the dropped ones
rebuilt from context and the kept ones seen, so with nothing dropped at test time it copies the test frame, an
anomaly included, and its error says little. The authors' evaluation drops a random share of the tokens of each
test frame at the training ratio, as in training (`random`; their frame score averages over all tokens, seen and
rebuilt). `cover` drops every token exactly once over ceil(n / m) passes (m = the tokens dropped in training, the
last pass wrapping round), and builds each token's output from the pass that dropped it (the mean where two did): a
map rebuilt entirely from context, at that many forwards' cost. `none` drops nothing. The draws depend only on
(`mask_seed`, frame index), so a video's scores do not change with the batch size, nor with the other videos
scored beside it (`predict` on one video gives what the evaluation gave). The default was chosen on the dev
videos (BENCHMARKS.md).

The volume is never held whole: maps are filtered in chunks of frames with a halo of half the filter on each
side, which gives exactly the whole-video filter (the filter only reads its window), so long videos at the
paper's resolutions fit in memory. The temporal Gaussian needs each video's frame scores, which are small.
"""

from collections.abc import Iterable, Iterator
import dataclasses
import functools

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import streaming
from maskedskip_jax.nn import aed_mae_losses

COMPONENTS = ("reconstruction", "distillation", "classifier")  # Eq. 6's terms, each alone with weight 1
MASKING = ("none", "random", "cover")  # test-time token dropping (module docstring)
_CHUNK = 64  # frames filtered at once (plus the halo)


@dataclasses.dataclass(frozen=True)
class ScoreSettings:
  """Eq. 6's weights and the filters after it; defaults are the paper's and its authors' code (Avenue)."""

  alpha: float = aed_mae_losses.ALPHA
  beta: float = aed_mae_losses.BETA
  gamma: float = aed_mae_losses.GAMMA
  box: int = aed_mae_losses.BOX
  sigma: float = aed_mae_losses.TEMPORAL_GAUSSIAN["avenue"][0]
  taps: int = aed_mae_losses.TEMPORAL_GAUSSIAN["avenue"][1]
  anomaly_maps: bool = True  # False for a model trained without them: the map channel is left out
  masking: str = "cover"  # chosen on ped2_dev over random (BENCHMARKS.md)
  mask_seed: int = 0
  draws: int = 1  # independent maskings per frame, their outputs averaged

  def __post_init__(self):
    if self.masking not in MASKING:
      raise UserError(f"aed_mae scoring: masking must be one of {', '.join(MASKING)}, got {self.masking!r}")
    if self.draws < 1:
      raise UserError(f"aed_mae scoring: draws must be a positive integer, got {self.draws}")

  def describe(self) -> dict:
    return {
      "masking": f"{self.masking} (seed {self.mask_seed}, {self.draws} draw(s) averaged)",
      "map": f"{self.alpha} ||x - x_teacher||^2 + {self.beta} ||x_teacher - x_student||^2 + {self.gamma} p(anomalous)",
      "volume_filter": f"{self.box}x{self.box}x{self.box} mean over the in-bounds window",
      "frame_score": "max of the filtered map",
      "temporal": f"Gaussian sigma {self.sigma} over {self.taps} taps, zero-padded" if self.taps > 1 else "none",
      "alignment": "frame t scored from frames t - offset, t, t + offset, indices clamped into the video",
    }


def settings(config) -> ScoreSettings:
  """The config's score: eval.aed_mae's weights and filters, with the terms of components a run did not train
  (no student: train.stage2_fraction 0; no classifier; no maps) left out."""
  e, m = config.eval.aed_mae, config.model.aed_mae
  return ScoreSettings(
    alpha=e.alpha,
    beta=e.beta if config.train.stage2_fraction > 0 else 0.0,
    gamma=e.gamma if m.classifier else 0.0,
    box=e.box,
    sigma=e.sigma,
    taps=e.taps,
    anomaly_maps=m.anomaly_maps,
    masking=e.masking if m.mask_ratio > 0 else "none",  # what is recorded is what is scored
    mask_seed=e.mask_seed,
    draws=e.draws,
  )


def check_eval_options(**options) -> None:
  """A UserError naming the first of the U-Net family's eval options (hybrid_beta, ...) that is set."""
  for key, value in options.items():
    if value:
      raise UserError(
        f"eval.{key}={value}: AED-MAE is scored by its paper's Eq. 6 (eval.aed_mae.*); eval.{key} belongs to "
        "the U-Net family, set it to its default"
      )


def report_section(settings: ScoreSettings) -> dict:
  """report.json's `frame_score` for an AED-MAE evaluation."""
  return {
    "kind": "aed_mae",
    "formula": "o_t = alpha ||x - x_teacher||^2 + beta ||x_teacher - x_student||^2 + gamma p(anomalous) (Eq. 6)",
    **dataclasses.asdict(settings),
  }


def weighted(components: dict, settings: ScoreSettings) -> dict:
  """The terms of `components` (AedMaeScorer.components) that the headline weighs, in COMPONENTS order."""
  weights = dict(zip(COMPONENTS, (settings.alpha, settings.beta, settings.gamma)))
  return {k: components[k] for k in COMPONENTS if weights[k] > 0 and k in components}


def dropped_per_pass(model, n: int) -> int:
  """Tokens of n that `model` drops in training, so in each test-time pass (0: it drops none)."""
  return int(n * model.mask_ratio)


def dropped_sets(model, settings: ScoreSettings, keys: jax.Array, n: int) -> list[jax.Array]:
  """Per pass, the (B, n) tokens each frame drops (`keys`: one per frame): per draw, one random draw or passes that
  drop every token once; or one pass that drops none (`none`, or a model trained without dropping)."""
  m = dropped_per_pass(model, n)
  if settings.masking == "none" or m == 0:
    return [jnp.zeros((len(keys), n), bool)]
  passes = 1 if settings.masking == "random" else -(-n // m)
  rows = jnp.arange(len(keys))[:, None]
  sets = []
  for d in range(settings.draws):
    draw_keys = keys if d == 0 else jax.vmap(lambda k, d=d: jax.random.fold_in(k, d))(keys)
    draw = jax.vmap(lambda k: jax.random.permutation(k, n))(draw_keys)  # (B, n): a random order of the tokens
    sets += [
      jnp.zeros((len(keys), n), bool).at[rows, draw[:, (g * m + jnp.arange(m)) % n]].set(True) for g in range(passes)
    ]
  return sets


def masked_outputs(model, settings: ScoreSettings, variables, x, keys):
  """Teacher and student outputs (B, H, W, c + 1) and the logit (B,) under the settings' test-time masking."""
  b, hh, ww, _ = x.shape
  p = model.patch
  h, w = hh // p, ww // p
  n = h * w
  m = dropped_per_pass(model, n)
  cover = settings.masking == "cover" and m > 0
  teacher = student = count = logit = 0.0
  sets = dropped_sets(model, settings, keys, n)
  for dropped in sets:
    if m == 0 or settings.masking == "none":
      out = model.apply(variables, x, train=False)
    else:  # stable: the kept (False) positions first, in raster order
      out = model.apply(variables, x, train=False, keep=jnp.argsort(dropped, axis=1, stable=True)[:, : n - m])
    # Under `cover` a token's output comes from the passes that dropped it; otherwise every token counts.
    use = dropped if cover else jnp.ones_like(dropped)
    weight = jnp.repeat(jnp.repeat(use.reshape(b, h, w).astype(jnp.float32), p, 1), p, 2)[..., None]
    teacher = teacher + weight * out["teacher"]
    student = student + weight * out["student"]
    count = count + weight
    logit = logit + out["logit"]
  return teacher / count, student / count, logit / len(sets)


def frame_keys(seed: int, frames: jax.Array) -> jax.Array:
  """The test-time masking keys of frames (indices within their video)."""
  return jax.vmap(lambda f: jax.random.fold_in(jax.random.key(seed), f))(frames)


@functools.partial(jax.jit, static_argnames=("model", "settings"))
def _maps(model, settings: ScoreSettings, variables, x, frames, rows):
  """(B, H, W) maps of the headline and of each term alone; x is the stacked input, frames the targets, `rows`
  the frames' indices in their video (they seed the test-time masking)."""
  keys = frame_keys(settings.mask_seed, rows)
  t, s, logit = masked_outputs(model, settings, variables, x, keys)
  maps = functools.partial(aed_mae_losses.pixel_scores, frames, t, s, logit, anomaly_maps=settings.anomaly_maps)
  return {
    "score": maps(settings.alpha, settings.beta, settings.gamma),
    "reconstruction": maps(1.0, 0.0, 0.0),
    "distillation": maps(0.0, 1.0, 0.0),
    "classifier": jax.nn.sigmoid(logit),
  }


class AedMaeScorer:
  """Scores every frame of a stream of videos with AED-MAE; the interface of `streaming.StreamingScorer`.

  `stream` yields a `streaming.ScoredFrame` per frame, a video at a time, once the video has ended (the temporal
  Gaussian reaches far ahead). After a stream, `components[name]` holds each term's frame scores per video.
  `map_size`: also return each frame's (unfiltered) Eq. 6 map resized to (h, w), for pixel metrics.
  """

  score_name = "aed_mae"  # what an alarm threshold calibrated on these scores records as its score
  patch = None  # no patch pooling: the frame score is the filtered map's maximum

  def __init__(
    self,
    model,
    variables,
    image_size,
    *,
    frame_offset: int,
    batch_size: int = 32,
    settings: ScoreSettings = ScoreSettings(),
    map_size=None,
  ):
    if batch_size < 1:
      raise UserError(f"batch_size: must be a positive integer, got {batch_size}")
    if settings.box < 1 or settings.box % 2 == 0 or settings.taps < 1 or settings.taps % 2 == 0:
      raise UserError(f"aed_mae scoring: the filter sizes must be odd and positive, got {settings}")
    self.model = model
    self.image_size = tuple(int(s) for s in image_size)
    self.frame_offset = int(frame_offset)
    self.temporal = 2 * self.frame_offset + 1
    self.batch_size = int(batch_size)
    self.settings = settings
    self.map_size = None if map_size is None else tuple(int(s) for s in map_size)
    self.variables = jax.device_put(variables)
    self.components: dict[str, list[np.ndarray]] = {}

  @property
  def frame_shape(self) -> tuple[int, int, int]:
    return (*self.image_size, self.model.channels)

  def compile(self):
    """Compiles (and runs once on zeros) the batched forward; returns self."""
    b, (h, w, c) = self.batch_size, self.frame_shape
    x = np.zeros((b, h, w, 3 * c), np.float32)  # host arrays, as `stream` passes: one dispatch-cache entry
    rows = np.arange(b, dtype=np.int32)
    jax.block_until_ready(_maps(self.model, self.settings, self.variables, x, x[..., :c], rows))
    return self

  def _video_maps(self, frames: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """Per batch of frames, the host maps of `_maps` (padding rows dropped)."""
    n, o, b = len(frames), self.frame_offset, self.batch_size
    for start in range(0, n, b):
      t = np.arange(start, min(start + b, n))
      rows = np.concatenate([t, np.full(b - len(t), t[-1])])  # a fixed batch shape: one compilation
      stack = [frames[np.clip(rows + d, 0, n - 1)].astype(np.float32) / 255.0 for d in (-o, 0, o)]
      x = np.concatenate(stack, axis=-1)
      out = _maps(self.model, self.settings, self.variables, x, stack[1], rows.astype(np.int32))
      yield {k: v[: len(t)] for k, v in jax.device_get(out).items()}

  def _peaks(self, maps: Iterable[dict[str, np.ndarray]], n: int) -> tuple[dict[str, np.ndarray], list]:
    """Frame maxima of the 3-D filtered maps (headline and terms), and the resized raw headline maps."""
    r = self.settings.box // 2
    names = ("score", "reconstruction", "distillation")
    peaks = {k: np.zeros(n, np.float64) for k in names}
    classifier, small = np.zeros(n, np.float64), []
    buffer, first, done = {k: [] for k in names}, 0, 0  # the buffer holds frames [first, done)
    for batch in maps:
      m = len(batch["classifier"])
      classifier[done : done + m] = batch["classifier"]
      for k in names:
        buffer[k].extend(batch[k])
      if self.map_size is not None:
        small.extend(cv2.resize(x, self.map_size[::-1], interpolation=cv2.INTER_AREA) for x in batch["score"])
      done += m
      if done - first < _CHUNK + 2 * r and done < n:
        continue
      # Frame f is exact once its whole in-video window [f - r, f + r] is in the buffer.
      lo = first if first == 0 else first + r
      end = n if done == n else done - r
      for k in names:
        volume = np.asarray(aed_mae_losses.smooth_volume(np.stack(buffer[k]), self.settings.box))
        peaks[k][lo:end] = volume[lo - first : end - first].max(axis=(1, 2))
        del buffer[k][: end - r - first]
      first = end - r
    # The classifier's map is constant over a frame, so its filtered frame max is its temporal box mean.
    filtered = aed_mae_losses.smooth_volume(classifier.astype(np.float32)[:, None, None], self.settings.box)
    peaks["classifier"] = np.asarray(filtered)[:, 0, 0].astype(np.float64)
    return peaks, small

  def _temporal(self, peaks: np.ndarray) -> np.ndarray:
    if self.settings.taps == 1:
      return peaks
    smoothed = aed_mae_losses.temporal_gaussian(peaks, self.settings.sigma, self.settings.taps)
    return np.asarray(smoothed, np.float64)

  def stream(self, videos: Iterable[Iterable[np.ndarray]]) -> Iterator[streaming.ScoredFrame]:
    """Yields a `ScoredFrame` for every frame of every video, in order, each video once it has ended."""
    self.components = {k: [] for k in COMPONENTS}
    for v, video in enumerate(videos):
      frames = np.asarray(list(video))
      if len(frames) == 0:
        for k in COMPONENTS:
          self.components[k].append(np.zeros(0, np.float64))
        continue
      if frames.shape[1:] != self.frame_shape or frames.dtype != np.uint8:
        raise UserError(f"video {v}: expected uint8 frames {self.frame_shape}, got {frames.dtype} {frames.shape[1:]}")
      peaks, small = self._peaks(self._video_maps(frames), len(frames))
      for k in COMPONENTS:
        self.components[k].append(self._temporal(peaks[k]))
      scores = self._temporal(peaks["score"])
      for f, score in enumerate(scores):
        yield streaming.ScoredFrame(v, f, float(score), None, small[f] if small else None)
