"""Config validation: the one place a bad config becomes a UserError naming the key.

`validate` runs at start-up (unknown, missing or mistyped keys, values out of range, settings that contradict each
other), before a dataset is read or a step is compiled. Code that reads a validated config asserts; a module
re-checks a value only for its own Python callers.
"""

import difflib
from typing import Any

import ml_collections

from maskedskip_jax import config as config_lib
from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import cae
from maskedskip_jax.nn import models
from maskedskip_jax.nn import ssmctb
from maskedskip_jax.train import aed_mae_step


def unknown_key_message(key: str) -> str:
  # Over the full dotted keys, unlike ml_collections' hint, which only looks among the leaf's siblings.
  close = difflib.get_close_matches(key, config_lib.SCHEMA, n=1)
  hint = f"; did you mean {close[0]}?" if close else ""
  return f"unknown config key {key}{hint}"


def is_known_key(key: str) -> bool:
  """A leaf key of the schema, or a group of them ('train')."""
  return key in config_lib.SCHEMA or any(k.startswith(key + ".") for k in config_lib.SCHEMA)


def expected_type(key: str) -> str:
  """What a value of `key` is: 'int', 'float', 'str', 'bool' or '(height, width)'."""
  default = config_lib.SCHEMA[key].default
  return "(height, width)" if isinstance(default, tuple) else type(default).__name__


def _typed(key: str, value: Any) -> Any:
  """`value` as ml_collections' type-safe assignment takes it (an int may stand for a float), or a UserError.

  Config files and the command line went through that rule already; this catches values set with `ignore_type()`,
  and refuses the None and the bools-for-ints that the rule lets through.
  """
  default = config_lib.SCHEMA[key].default
  if value is not None and isinstance(value, bool) == isinstance(default, bool):
    try:
      return ml_collections.FieldReference(value, field_type=type(default)).get()
    except TypeError:
      pass
  raise UserError(f"config key {key}: expected {expected_type(key)}, got {value!r}")


def validate(config) -> None:
  """Raise UserError naming the first unknown, missing, mistyped or bad key."""
  flat = config_lib.flatten(config)
  for key in flat:
    if key not in config_lib.SCHEMA:
      raise UserError(unknown_key_message(key))
  for key, field in config_lib.SCHEMA.items():
    if key not in flat:
      raise UserError(f"config key {key} is missing (start the config from maskedskip_jax.config.default_config())")
    value = _typed(key, flat[key])
    problem = field.check(value) if field.check else None
    if problem:
      raise UserError(f"config key {key}: expected {problem}, got {flat[key]!r}")
  _check_together(flat)


def _check_together(flat: dict[str, Any]) -> None:
  variant, size = flat["model.variant"], tuple(flat["data.image_size"])
  if variant != cae.VARIANT and any(s % 16 for s in size):
    raise UserError(
      f"config key data.image_size: expected (height, width), both multiples of 16 for {variant!r} (four 2x "
      f"downsamplings; the 'cae' variant takes multiples of 8), got {size!r}"
    )
  _check_training_options(flat)
  if variant == aed_mae_step.VARIANT:
    _check_aed_mae(flat)
  elif variant == cae.VARIANT:
    _check_cae(flat)
  elif models.default_temporal(flat["model.variant"]) == 1 and flat["model.temporal"] != 1:
    raise UserError(
      f"config key model.temporal: variant {flat['model.variant']!r} sees single frames; "
      f"expected 1, got {flat['model.temporal']}"
    )
  if flat["train.num_steps"] == 0 and flat["train.epochs"] == 0:
    raise UserError("config key train.epochs: expected >= 1 when train.num_steps is 0, got 0")
  if flat["model.mask_head"] and flat["train.paste_prob"] == 0:
    # Without pasted objects every target map is all zeros: the head would learn nothing.
    raise UserError(
      "config key model.mask_head: needs train.paste_prob > 0 (the head learns from pasted "
      "objects' maps), got train.paste_prob=0"
    )
  if flat["train.paste_prob"] > 0 and flat["train.paste_source"] == "cutouts" and not flat["train.paste_dir"]:
    raise UserError(
      "config key train.paste_dir: train.paste_source='cutouts' pastes the object clips of a folder; none was given"
    )
  if flat["eval.mask_weight"] > 0 and not flat["model.mask_head"]:
    raise UserError(
      "config key eval.mask_weight: scores from the mask head's map, so it needs "
      f"model.mask_head=True; got eval.mask_weight={flat['eval.mask_weight']} without a head"
    )
  if flat["eval.hybrid_alpha"] == flat["eval.hybrid_beta"] == flat["eval.mask_weight"] == 0:
    raise UserError(
      "config key eval.hybrid_alpha: every frame-score weight (eval.hybrid_alpha, eval.hybrid_beta, "
      "eval.mask_weight) is 0; set one above 0 (hybrid_alpha=1 alone is the paper's score)"
    )
  if flat["data.name"] != "synthetic" and not (flat["data.root"] or flat["data.tfds_data_dir"]):
    raise UserError(
      f"config key data.root: dataset {flat['data.name']!r} needs its folder (e.g. --config.data.root=/path/to/dataset)"
    )
  if flat["model.variant"] in models.VARIANTS and flat["model.ssmctb.placement"] != "none":
    _check_ssmctb(flat)


def _check_training_options(flat: dict[str, Any]) -> None:
  """Early stopping and augmentation: what they need, and the family that has neither (AED-MAE's two stages)."""
  if flat["train.early_stopping_patience"] > 0 and flat["data.holdout_share"] == 0:
    raise UserError(
      "config key train.early_stopping_patience: stops on the held-out training videos' loss, so it needs "
      "data.holdout_share > 0; got data.holdout_share=0"
    )
  for key in ("train.early_stopping_patience", "train.augment"):
    if flat[key] and flat["model.variant"] == aed_mae_step.VARIANT:
      raise UserError(f"config key {key}: not available for aed_mae; expected 0 / False, got {flat[key]!r}")
  k, batch = flat["train.micro_batches"], flat["train.batch_size"]
  if k > 1 and flat["model.variant"] != aed_mae_step.VARIANT:
    raise UserError(f"config key train.micro_batches: only aed_mae takes its batch in parts; expected 1, got {k}")
  if batch % k:
    raise UserError(f"config key train.micro_batches: expected a divisor of train.batch_size={batch}, got {k}")


def _check_cae(flat: dict[str, Any]) -> None:
  if flat["model.temporal"] == 1 and flat["train.hybrid_beta"] > 0:
    raise UserError(
      "config key model.temporal: the cae's motion term (train.hybrid_beta > 0) weighs by the difference from the "
      "neighbouring frames, so expected an odd T >= 3, got 1 (or set train.hybrid_beta=0)"
    )
  if flat["train.hybrid_alpha"] == flat["train.hybrid_beta"] == 0:
    raise UserError("config key train.hybrid_alpha: train.hybrid_alpha and train.hybrid_beta are both 0: no loss")
  fixed = {"model.mask_head": False, "model.ssmctb.placement": "none", "train.motion_weighting": "none"}
  for key, want in fixed.items():
    if flat[key] != want:
      raise UserError(
        f"config key {key}: the cae has no mask head or SSMCTB blocks and weighs its own motion term "
        f"(train.hybrid_beta); expected {want!r}, got {flat[key]!r}"
      )


def _check_aed_mae(flat: dict[str, Any]) -> None:
  offset, patch, heads = (flat[f"model.aed_mae.{k}"] for k in ("frame_offset", "patch", "heads"))
  if flat["model.temporal"] != 2 * offset + 1:
    raise UserError(
      f"config key model.temporal: aed_mae stacks frames t-{offset}, t, t+{offset} (model.aed_mae.frame_offset="
      f"{offset}), so expected {2 * offset + 1}, got {flat['model.temporal']}"
    )
  h, w = flat["data.image_size"]
  if h % patch or w % patch:
    raise UserError(
      f"config key data.image_size: aed_mae needs both sides multiples of model.aed_mae.patch={patch}, got {h}x{w}"
    )
  for key in ("model.aed_mae.embed_dim", "model.aed_mae.decoder_dim"):
    if flat[key] % heads:
      raise UserError(f"config key {key}: expected a multiple of model.aed_mae.heads={heads}, got {flat[key]}")
  if flat["model.mask_head"]:
    raise UserError("config key model.mask_head: aed_mae predicts its anomaly map itself; expected False, got True")


def _check_ssmctb(flat: dict[str, Any]) -> None:
  kp, d, t = flat["model.ssmctb.kernel_prime"], flat["model.ssmctb.distance"], flat["model.temporal"]
  min_t = ssmctb.paper_kernel_size(kp, d)
  skips = flat["model.ssmctb.placement"] in ("latent_skip", "all_skips")
  if skips and flat["model.ssmctb.dims"] == 3 and flat["model.ssmctb.depth"] == "paper" and t < min_t:
    # The centre frame's live temporal taps sit d+1..d+k' frames away: with fewer frames they read zero padding.
    raise UserError(
      f"config key model.temporal: the paper's 3-D SSMCTB (model.ssmctb.dims=3, depth='paper', k'={kp}, d={d}) "
      f"needs clips of at least 2k'+2d+1 = {min_t} frames, got {t}; or set model.ssmctb.depth='clip'"
    )
  width = models.penultimate_width(flat["model.variant"], flat["model.latent_dim"])
  if flat["model.ssmctb.placement"] == "penultimate" and width % 4:
    raise UserError(
      f"config key model.latent_dim: model.ssmctb.placement='penultimate' gives the last decoder conv layer its "
      f"input's {width} channels, which depth-to-space needs to be a multiple of 4; got {flat['model.latent_dim']}"
    )
