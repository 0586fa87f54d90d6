"""The config schema: every key, its default and what values it accepts.

Config files (configs/*.py) start from `default_config()` and override what they need, so every config has every
key. It is a type-safe ml_collections ConfigDict: each key's type is its default's, a value of another type is
refused where it is assigned (an int may stand for a float), and `--config.key=value` is parsed by that type.
Each key's value rule lives here beside its default; `validation.validate` applies them. Each list of choices is
owned by the module that uses it and imported from there.
"""

from collections.abc import Callable
import copy
import dataclasses
from typing import Any

import ml_collections

from data_pipeline import anomaly_paste
from data_pipeline import pipeline
from data_pipeline import registry
from data_pipeline import synthetic
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import baselines
from maskedskip_jax.eval import hybrid
from maskedskip_jax.eval import postprocess
from maskedskip_jax.nn import conv_lowering
from maskedskip_jax.nn import dtypes
from maskedskip_jax.nn import models
from maskedskip_jax.nn import motion
from maskedskip_jax.nn import ssmctb
from maskedskip_jax.train import aed_mae_step
from maskedskip_jax.train import optim
from maskedskip_jax.train import step


@dataclasses.dataclass(frozen=True)
class Field:
  default: Any  # its type is the key's type; a tuple is (height, width)
  check: Callable[[Any], str | None] | None = None  # returns what was expected when the value is bad
  doc: str = ""


def _one_of(*options):
  return lambda v: None if v in options else f"one of {', '.join(map(repr, options))}"


def _at_least(lo):
  return lambda v: None if v >= lo else f"a number >= {lo}"


_positive = lambda v: None if v > 0 else "a number > 0"
_fraction = lambda v: None if 0 <= v <= 1 else "a fraction in [0, 1]"
_below_one = lambda v: None if 0 <= v < 1 else "a fraction in [0, 1)"
_holdout_share = lambda v: None if 0 <= v < 1 else "a fraction in [0, 1)"
_open_fraction = lambda v: None if 0 < v < 1 else "a fraction strictly between 0 and 1"
_odd = lambda v: None if v >= 1 and v % 2 == 1 else "a positive odd number (the target is the centre frame)"
_multiple_of_8 = lambda v: None if v >= 8 and v % 8 == 0 else "a positive multiple of 8"


def _image_size(v):
  if len(v) == 2 and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 and s % 16 == 0 for s in v):
    return None
  return "(height, width), both multiples of 16 (the network downsamples 4 times by 2)"


def _postprocess(v):
  try:
    postprocess.parse_chain(v)
  except UserError as e:
    return f"a post-processing chain such as 'median' or 'gaussian:sigma=3+zscore' ({e})"
  return None


def _baseline_names(v):
  if all(n.strip() in baselines.BASELINES for n in v.split(",") if n.strip()):
    return None
  return f"comma-separated names from {', '.join(baselines.BASELINES)} ('' for none)"


SCHEMA: dict[str, Field] = {
  "data.name": Field("synthetic", _one_of(*registry.KNOWN), "dataset layout (data_pipeline.registry)"),
  "data.root": Field("", None, "dataset folder; '' for synthetic means generate into data.cache_dir"),
  "data.image_size": Field(
    (64, 64), _image_size, "frames are resized to (height, width); one side alone (128) means a square"
  ),
  "data.channels": Field(1, _one_of(1, 3), "1 = grey, 3 = RGB"),
  "data.cache_dir": Field(
    "~/.cache/maskedskip_jax", None, "decoded-frame stores and generated synthetic data; '' = keep in memory"
  ),
  "data.tfds_data_dir": Field("", None, "read a TFDS build from here instead of data.root"),
  "data.backend": Field("auto", _one_of("auto", *pipeline.BACKENDS), "clip streaming: tf.data or Grain"),
  "data.stride": Field(1, _at_least(1), "frames between the starts of consecutive training clips"),
  "data.holdout_share": Field(
    0.1, _holdout_share, "share of the training videos kept out of training to calibrate the alarm threshold"
  ),
  "model.variant": Field(
    "maskedskip_unet",
    _one_of(*models.VARIANTS, aed_mae_step.VARIANT),
    "models.VARIANTS (the U-Net family), or 'aed_mae' (AED-MAE, its settings under model.aed_mae)",
  ),
  "model.latent_dim": Field(512, _multiple_of_8, "widths are latent/8, /4, /2, /1"),
  "model.temporal": Field(3, _odd, "frames per clip (1 for unet / masked2d_skip_unet / autoencoder)"),
  "model.masked_kernels": Field(
    "train", _one_of(*optim.MASKED_KERNEL_MODES), "'frozen' = the published code (masked-conv kernels never update)"
  ),
  "model.centre_only": Field(True, None, "compute only the centre frame of the 3-D skip convs"),
  "model.conv_lowering": Field(
    "auto",
    _one_of(*conv_lowering.LOWERINGS),
    "conv compute: 'cpu' fast paths (FFT weight gradients, im2col), XLA's convs, "
    "or 'auto' (cpu fast paths on the CPU backend only)",
  ),
  "model.mask_head": Field(
    False,
    None,
    "also predict the pasted-object map as an extra output channel (needs "
    "train.paste_prob > 0); scored only with eval.mask_weight > 0",
  ),
  "model.ssmctb.placement": Field(
    "none",
    _one_of(*ssmctb.PLACEMENTS),
    "SSMCTB blocks: in skip 4, in every skip, before the last decoder block, or 'penultimate' (the paper's: "
    "instead of the last decoder block's conv layer)",
  ),
  "model.ssmctb.dims": Field(2, _one_of(2, 3), "2-D block on the centre skip, or 3-D on the T frames (skips only)"),
  "model.ssmctb.depth": Field(
    "paper",
    _one_of(*ssmctb.DEPTHS),
    "3-D kernel depth: 'paper' = 2k'+2d+1 (corners d frames from the centre; needs model.temporal >= that) or "
    "'clip' = T (corners in the first and last k' frames)",
  ),
  "model.ssmctb.kernel_prime": Field(1, _at_least(1), "k': side of each live corner sub-kernel"),
  "model.ssmctb.distance": Field(1, _at_least(0), "d: distance of the corners from the masked centre"),
  "model.ssmctb.delta": Field(1.0, _positive, "Huber threshold of the block's self-supervised loss"),
  "model.ssmctb.weight": Field(
    0.1, _at_least(0), "lambda: weight of that loss in the total (the seed text lost the paper's; SSPCAB's 0.1)"
  ),
  "model.aed_mae.patch": Field(16, _at_least(1), "d: token side (paper: 16 Avenue, 8 ShanghaiTech/UBnormal, 4 Ped2)"),
  "model.aed_mae.mask_ratio": Field(0.5, _below_one, "share of tokens dropped in training (the authors' code)"),
  "model.aed_mae.frame_offset": Field(
    3, _at_least(1), "input: frames t - offset, t, t + offset on channels (authors' input_3d); T = 2 * offset + 1"
  ),
  "model.aed_mae.embed_dim": Field(256, _at_least(1), "encoder width"),
  "model.aed_mae.depth": Field(3, _at_least(1), "encoder CvT blocks"),
  "model.aed_mae.decoder_dim": Field(128, _at_least(1), "decoder width"),
  "model.aed_mae.decoder_depth": Field(3, _at_least(2), "teacher decoder blocks, the first shared with the student"),
  "model.aed_mae.student_depth": Field(1, _at_least(1), "student decoder blocks after the shared one"),
  "model.aed_mae.heads": Field(4, _at_least(1), "attention heads per block; divides embed_dim and decoder_dim"),
  "model.aed_mae.dropout": Field(0.1, _fraction, "MLP dropout (the authors' code)"),
  "train.batch_size": Field(16, _at_least(1), "global batch, split over all devices"),
  "train.epochs": Field(10, _at_least(0), "used when train.num_steps is 0"),
  "train.num_steps": Field(0, _at_least(0), "> 0 overrides train.epochs"),
  "train.learning_rate": Field(1e-2, _positive, "Adam"),
  "train.schedule": Field("constant", _one_of(*optim.SCHEDULES), "learning-rate schedule"),
  "train.warmup_steps": Field(0, _at_least(0), "for warmup_cosine"),
  "train.grad_clip_norm": Field(0.0, _at_least(0), "0 = no clipping"),
  "train.seed": Field(0, _at_least(0), "parameter init, rng and data order"),
  "train.checkpoint_every_steps": Field(500, _at_least(1), "also saved at the end and on SIGTERM"),
  "train.keep_checkpoints": Field(3, _at_least(1), "newest N are kept"),
  "train.async_checkpoints": Field(
    True,
    None,
    "write checkpoints while training goes on (a SIGKILL mid-write then "
    "costs up to interval + write time, not one interval)",
  ),
  "train.log_every_steps": Field(50, _at_least(1), "metrics.jsonl / TensorBoard interval"),
  "train.compute_dtype": Field(
    "auto", _one_of(*dtypes.COMPUTE_DTYPES), "'auto' = bfloat16 on GPU/TPU, float32 on CPU; params stay float32"
  ),
  "train.compilation_cache_dir": Field(
    "~/.cache/maskedskip_jax/jax", None, "JAX persistent compilation cache; '' = off"
  ),
  "train.prefetch": Field(2, _at_least(1), "batches placed on the devices ahead of the step"),
  "train.motion_weighting": Field(
    "none", _one_of(*step.MOTION_WEIGHTINGS), "weight the loss by frame-difference motion, per pixel or per patch"
  ),
  "train.motion_median": Field(0, _one_of(*motion.MEDIAN_SIZES), "median filter before differencing (0 = off)"),
  "train.motion_patch": Field(16, _at_least(1), "patch side for motion_weighting='patch'"),
  "train.motion_uniform_mix": Field(0.0, _fraction, "share of uniform weight mixed into motion weights"),
  "train.paste_prob": Field(0.0, _fraction, "probability that a training clip gets a pasted object"),
  "train.paste_source": Field("mixed", _one_of(*anomaly_paste.SOURCES), "pasted objects: other clips or sprites"),
  "train.stage2_fraction": Field(
    40 / 140, _open_fraction, "aed_mae: share of the steps that train the student alone (paper: 100 + 40 epochs)"
  ),
  "train.mask_loss_weight": Field(1.0, _at_least(0), "weight of the mask head's binary cross-entropy in the loss"),
  "eval.batch_size": Field(32, _at_least(1), "clips per evaluation batch (global)"),
  "eval.postprocess": Field("none", _postprocess, "frame-score smoothing, e.g. 'median:window=17'"),
  "eval.patch": Field(16, _at_least(1), "frame score = max over patch means of this size"),
  "eval.gaussian_sigma": Field(3.0, _positive, "sigma of the Gaussian row of the post-processing table"),
  "eval.write_videos": Field(False, None, "also write input | reconstruction | difference videos"),
  "eval.pixel_metrics": Field(True, None, "pixel AUROC, RBDC and TBDC where the test set has masks"),
  "eval.pixel_size": Field(64, _at_least(8), "pixel metrics on maps resized to at most this side"),
  "eval.region_thresholds": Field(20, _at_least(2), "score thresholds swept for RBDC/TBDC"),
  "eval.hybrid_alpha": Field(1.0, _at_least(0), "frame score = alpha * reconstruction + beta * motion"),
  "eval.hybrid_beta": Field(0.0, _at_least(0), "0 = reconstruction only (the paper's score)"),
  "eval.motion_median": Field(0, _one_of(*motion.MEDIAN_SIZES), "median filter for the 'gradient' motion score"),
  "eval.hybrid_motion": Field(
    "gradient",
    _one_of(*hybrid.MOTIONS),
    "the hybrid's motion term: 'gradient' (centre frame vs neighbours) or a baseline",
  ),
  "eval.hybrid_standardise": Field(
    False, None, "standardise the hybrid's terms by their mean/std on the training videos"
  ),
  "eval.mask_weight": Field(
    0.0, _at_least(0), "frame score += this * the mask head's patch-pooled map (needs model.mask_head)"
  ),
  "eval.baselines": Field(
    ",".join(baselines.BASELINES),
    _baseline_names,
    "no-learning baselines scored beside the model (comma-separated; '' = none)",
  ),
  "export.onnx": Field(
    "off", _one_of("off", "auto", "on"), "ONNX graphs in the bundle: 'auto' when jax2onnx converts, 'on' or fail"
  ),
}
for _key, _value in synthetic.DEFAULTS.items():
  SCHEMA[f"data.synthetic.{_key}"] = Field(_value, _at_least(0), "synthetic generator parameter")


def default_config() -> ml_collections.ConfigDict:
  """Every key at its default; config files override from here."""
  tree = {}
  for key, field in SCHEMA.items():
    *groups, leaf = key.split(".")
    node = tree
    for group in groups:
      node = node.setdefault(group, {})
    node[leaf] = field.default
  return ml_collections.ConfigDict(tree)


def _square(size):
  """128, or the (128,) that `--config.data.image_size=128` parses to, is a 128x128 square."""
  if isinstance(size, int) and not isinstance(size, bool):
    return (size, size)
  return (size[0], size[0]) if isinstance(size, (tuple, list)) and len(size) == 1 else size


def with_values(config, values: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with the dotted keys of `values` (e.g. 'model.ssmctb.placement') set.

  One side alone for data.image_size (128) means a square; the command line's overrides go through here too.
  """
  c = copy.deepcopy(config)
  c.update_from_flattened_dict({k: _square(v) if k == "data.image_size" else v for k, v in values.items()})
  return c


def reference_config(dataset: str) -> ml_collections.ConfigDict:
  """The published code's training setting (SPEC section 1) on `dataset`: the real-dataset configs' base."""
  return with_values(
    default_config(),
    {
      "data.name": dataset,
      "data.image_size": (256, 256),
      "data.channels": 3,
      "model.variant": "maskedskip_unet",
      "model.latent_dim": 512,
      "model.temporal": 3,
      "train.batch_size": 16,
      "train.epochs": 10,
      "train.learning_rate": 1e-2,
      "train.checkpoint_every_steps": 200,
      "eval.postprocess": "none",
    },
  )


def flatten(config) -> dict[str, Any]:
  """{'train.batch_size': 16, ...} for a ConfigDict or nested dicts; {} for anything else."""
  out = {}
  for key, value in config.items() if hasattr(config, "items") else []:
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
    else:
      out[key] = value
  return out


def to_json(config, exclude=()) -> dict[str, Any]:
  """The flattened config as JSON values (tuples as lists), sorted by key, without the `exclude` keys."""
  return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(flatten(config).items()) if k not in exclude}
