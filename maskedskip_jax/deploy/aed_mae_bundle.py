"""AED-MAE in a model bundle: what model.json records of it, the network it rebuilds, and its scorer.

An AED-MAE bundle's model.json has "variant": "aed_mae" and an "aed_mae" record: every field of the network (both
decoders: the teacher's `decoder_depth` blocks and the student's `branch` shared blocks plus `student_depth` of its
own), the input's frame spacing (`frame_offset`: frames t - offset, t and t + offset on the channel axis, so
T = 2 * offset + 1) and the Eq. 6 score it was evaluated with (`score`), so that `predict` scores a video exactly
as the evaluation did. Its exported forward takes the stacked frames (B, H, W, 3C) and returns the teacher's and
the student's outputs and the classifier's logit.
"""

from collections.abc import Mapping
import dataclasses
from typing import Any

from maskedskip_jax.errors import UserError

VARIANT = "aed_mae"
# AedMae's fields that define its weights; dtype and param_dtype are how it runs, not what it is.
NETWORK_KEYS = (
  "channels",
  "patch",
  "mask_ratio",
  "embed_dim",
  "depth",
  "decoder_dim",
  "decoder_depth",
  "branch",
  "student_depth",
  "heads",
  "mlp_ratio",
  "kernel",
  "dropout",
)
RETURNS = "{'teacher': (B, H, W, C + 1), 'student': (B, H, W, C + 1), 'logit': (B,)}"


def is_record(doc: Mapping) -> bool:
  return doc.get("variant") == VARIANT


def record(model, frame_offset: int, settings) -> dict[str, Any]:
  """model.json's "aed_mae" record of `model` (nn.aed_mae.AedMae) scored with `settings` (ScoreSettings)."""
  return {
    **{k: getattr(model, k) for k in NETWORK_KEYS},
    "frame_offset": int(frame_offset),
    "temporal": 2 * int(frame_offset) + 1,
    "decoders": {"teacher": model.decoder_depth, "student": model.branch + model.student_depth},
    "score": dataclasses.asdict(settings),
  }


def _fields(rec: Mapping, where: str) -> dict[str, Any]:
  missing = [k for k in (*NETWORK_KEYS, "frame_offset", "score") if k not in rec]
  if missing:
    raise UserError(f"{where}: the aed_mae record lacks {missing}")
  return {k: rec[k] for k in NETWORK_KEYS}


def build(rec: Mapping, where: str, dtype=None):
  """The AedMae network that `rec` describes (float32 unless `dtype`)."""
  from maskedskip_jax.nn import aed_mae  # pylint: disable=g-import-not-at-top

  kwargs = {} if dtype is None else {"dtype": dtype}
  return aed_mae.AedMae(**_fields(rec, where), **kwargs)


def input_shape(batch: int, image_size, channels: int) -> tuple[int, int, int, int]:
  """The network's input (B, H, W, 3C): three frames stacked on the channel axis."""
  return (int(batch), *(int(s) for s in image_size), 3 * int(channels))


def expected_variables(model) -> dict:
  """The shapes and dtypes of the variables `model` creates (any frame size: none depends on it)."""
  from maskedskip_jax.nn import aed_mae  # pylint: disable=g-import-not-at-top

  side = 2 * model.patch
  return aed_mae.variable_shapes(model, input_shape(1, (side, side), model.channels))


def score_settings(rec: Mapping):
  """The `aed_mae_scorer.ScoreSettings` the bundle was evaluated with.

  Bundles written before test-time masking (no "masking" in the record) were evaluated with nothing dropped.
  """
  from maskedskip_jax.eval import aed_mae_scorer  # pylint: disable=g-import-not-at-top

  return aed_mae_scorer.ScoreSettings(**{"masking": "none", **rec["score"]})


def scorer(model, variables, image_size, rec: Mapping, batch_size: int, map_size=None):
  """An `aed_mae_scorer.AedMaeScorer` for the bundle's model, scoring as its evaluation did."""
  from maskedskip_jax.eval import aed_mae_scorer  # pylint: disable=g-import-not-at-top

  return aed_mae_scorer.AedMaeScorer(
    model,
    variables,
    image_size,
    frame_offset=rec["frame_offset"],
    batch_size=batch_size,
    settings=score_settings(rec),
    map_size=map_size,
  )
