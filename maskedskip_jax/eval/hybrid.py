"""The frame score: the reconstruction's alone (the paper's), or a weighted sum with a motion term and the mask head.

  score = hybrid_alpha * R + hybrid_beta * M + mask_weight * K

R is the reconstruction score (`scoring.frame_scores` of the error map), K the mask head's map pooled the same
way, and M a motion score chosen by `eval.hybrid_motion`:

  gradient    `motion.video_motion_scores`: the centre frame against its two neighbours (optionally median
              filtered first), the motion term of the hybrid-loss paper (seed 003, Sec. 3.3);
  frame_diff, mog2, flow
              a no-learning baseline's map (`baselines`), pooled like R.

R and M have unrelated units (a reconstruction error against, say, a flow magnitude), so fixed weights mean
little across datasets. With `eval.hybrid_standardise`, R and M are each first standardised by the mean and the
standard deviation of their frame scores on the training videos: normal footage, scored by the same model, never
test statistics. The weights then count standard deviations of normal variation, and alpha = beta = 1 treats an
unusual reconstruction and unusual motion alike.
"""

import dataclasses
from typing import Any

import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import baselines
from maskedskip_jax.nn import motion

MOTIONS = ("gradient", *baselines.BASELINES)


@dataclasses.dataclass(frozen=True)
class Spec:
  """The eval.* frame-score settings."""

  alpha: float = 1.0
  beta: float = 0.0
  motion: str = "gradient"
  motion_median: int = 0
  mask_weight: float = 0.0
  standardise: bool = False
  patch: int = 16

  def __post_init__(self):
    if self.motion not in MOTIONS:
      raise UserError(f"eval.hybrid_motion: expected one of {', '.join(MOTIONS)}, got {self.motion!r}")

  @property
  def reconstruction_only(self) -> bool:
    return self.beta == 0 and self.mask_weight == 0

  @property
  def needs_training_scores(self) -> bool:
    """Standardisation is only used where there is a motion term to put on R's scale."""
    return self.standardise and self.beta > 0

  def formula(self) -> str:
    if self.reconstruction_only:
      return "reconstruction"
    z = "z" if self.needs_training_scores else ""
    terms = [f"hybrid_alpha * {z}reconstruction"]
    if self.beta > 0:
      terms.append(f"hybrid_beta * {z}motion({self.motion})")
    if self.mask_weight > 0:
      terms.append("mask_weight * mask head")
    text = " + ".join(terms)
    if z:
      text += " (z: standardised by the mean and std of its frame scores on the training videos)"
    return text


def motion_scores(frames, spec: Spec) -> np.ndarray:
  """float64 (N,) motion scores of one video's frames, by `spec.motion`."""
  if spec.motion == "gradient":
    return motion.video_motion_scores(frames, median=spec.motion_median, patch=spec.patch)
  return baselines.video_scores(spec.motion, frames, spec.patch)


@dataclasses.dataclass(frozen=True)
class Standardisation:
  """Mean and standard deviation of R and of M over every frame of the training videos."""

  recon_mean: float
  recon_std: float
  motion_mean: float
  motion_std: float

  def as_dict(self) -> dict[str, float]:
    return dataclasses.asdict(self)


def _mean_std(name: str, scores) -> tuple[float, float]:
  flat = np.concatenate([np.asarray(s, np.float64) for s in scores]) if scores else np.zeros(0)
  if flat.size < 2:
    raise UserError(
      f"eval.hybrid_standardise: the training videos gave {flat.size} {name} score(s); "
      "at least 2 are needed to standardise"
    )
  std = float(flat.std())
  if not std > 0:
    raise UserError(
      f"eval.hybrid_standardise: every training frame has the same {name} score, so it cannot be "
      "standardised; turn eval.hybrid_standardise off"
    )
  return float(flat.mean()), std


def standardisation(train_recon, train_frames, spec: Spec) -> Standardisation:
  """From the model's frame scores on the training videos and those videos' frames (an iterable of arrays)."""
  train_motion = [motion_scores(frames, spec) for frames in train_frames]
  return Standardisation(*_mean_std("reconstruction", train_recon), *_mean_std("motion", train_motion))


def combine(recon, motion_terms, mask_terms, spec: Spec, stats: Standardisation | None = None) -> list[np.ndarray]:
  """Per-video frame scores from per-video R, M (None when beta is 0) and K (None when mask_weight is 0)."""
  recon = [np.asarray(s, np.float64) for s in recon]
  if spec.reconstruction_only:
    return recon
  if spec.needs_training_scores and stats is None:
    raise UserError("eval.hybrid_standardise needs the training videos' statistics; none were given")
  out = []
  for v, r in enumerate(recon):
    if spec.needs_training_scores:
      r = (r - stats.recon_mean) / stats.recon_std
    score = spec.alpha * r
    if spec.beta > 0:
      m = np.asarray(motion_terms[v], np.float64)
      if spec.needs_training_scores:
        m = (m - stats.motion_mean) / stats.motion_std
      score = score + spec.beta * m
    if spec.mask_weight > 0:
      score = score + spec.mask_weight * np.asarray(mask_terms[v], np.float64)
    out.append(score)
  return out


def report_section(spec: Spec, stats: Standardisation | None) -> dict[str, Any]:
  """report.json's `frame_score`."""
  return {
    "hybrid_alpha": spec.alpha,
    "hybrid_beta": spec.beta,
    "hybrid_motion": spec.motion,
    "motion_median": spec.motion_median,
    "mask_weight": spec.mask_weight,
    "hybrid_standardise": spec.standardise,
    "formula": spec.formula(),
    "standardisation": stats.as_dict() if stats is not None else None,
  }
