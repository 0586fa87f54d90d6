"""The config schema: every key, its default, its type and what values it accepts.

Config files (configs/*.py) start from `default_config()` and override what they
need, so every config has every key. `validate` runs at start-up and turns any
mistake into one UserError naming the key, before a dataset is read or a step is
compiled.
"""

import copy
import dataclasses
import difflib
from typing import Any, Callable

import ml_collections

from maskedskip_jax.nn import conv_lowering
from maskedskip_jax.errors import UserError

DATASETS = ("synthetic", "ucsd_ped1", "ucsd_ped2", "cuhk_avenue", "shanghaitech", "generic", "frames")
BACKENDS = ("auto", "tfdata", "grain")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
# Written out (tests check they match ssmctb.PLACEMENTS, motion.MEDIAN_SIZES, anomaly_paste.SOURCES)
# so that reading a config imports neither JAX nor the data code.
SSMCTB_PLACEMENTS = ("none", "latent_skip", "all_skips", "decoder")
MOTION_WEIGHTING = ("none", "pixel", "patch")
MEDIAN_SIZES = (0, 3, 5)
PASTE_SOURCES = ("batch", "sprites", "mixed")
BASELINES = ("frame_diff", "mog2", "flow")  # baselines.BASELINES
HYBRID_MOTIONS = ("gradient", *BASELINES)  # hybrid.MOTIONS
# Kept in step with data_pipeline.synthetic.DEFAULTS (a test checks); written out so
# that reading a config needs neither OpenCV nor the generator.
SYNTHETIC_DEFAULTS = dict(seed=0, num_train=10, num_test=8, frames_per_video=120, height=120, width=160)


@dataclasses.dataclass(frozen=True)
class Field:
  default: Any
  kind: str  # 'int' | 'float' | 'str' | 'bool' | 'size' ((height, width) of positive ints)
  check: Callable[[Any], str | None] | None = None  # returns what was expected when the value is bad
  doc: str = ""


def _one_of(*options):
  return lambda v: None if v in options else f"one of {', '.join(map(repr, options))}"


def _at_least(lo):
  return lambda v: None if v >= lo else f"a number >= {lo}"


def _positive(v):
  return None if v > 0 else "a number > 0"


def _fraction(v):
  return None if 0 <= v <= 1 else "a fraction in [0, 1]"


def _odd(v):
  return None if v >= 1 and v % 2 == 1 else "a positive odd number (the target is the centre frame)"


def _multiple_of_16(v):
  if all(s > 0 and s % 16 == 0 for s in v):
    return None
  return "(height, width), both multiples of 16 (the network downsamples 4 times by 2)"


def _multiple_of_8(v):
  return None if v >= 8 and v % 8 == 0 else "a positive multiple of 8"


def _postprocess(v):
  from maskedskip_jax.eval import postprocess  # pylint: disable=g-import-not-at-top
  try:
    postprocess.parse_chain(v)
  except UserError as e:
    return f"a post-processing chain such as 'median' or 'gaussian:sigma=3+zscore' ({e})"
  return None


def _baseline_names(v):
  names = [n.strip() for n in v.split(",") if n.strip()]
  if all(n in BASELINES for n in names):
    return None
  return f"comma-separated names from {', '.join(BASELINES)} ('' for none)"


def _variant(v):
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top
  return None if v in models.VARIANTS else f"one of {', '.join(models.VARIANTS)}"


SCHEMA: dict[str, Field] = {
    "data.name": Field("synthetic", "str", _one_of(*DATASETS), "dataset layout (data_pipeline.registry)"),
    "data.root": Field("", "str", None, "dataset folder; '' for synthetic means generate into data.cache_dir"),
    "data.image_size": Field((64, 64), "size", _multiple_of_16, "frames are resized to (height, width)"),
    "data.channels": Field(1, "int", _one_of(1, 3), "1 = grey, 3 = RGB"),
    "data.cache_dir": Field("~/.cache/maskedskip_jax", "str", None,
                            "decoded-frame stores and generated synthetic data; '' = keep in memory"),
    "data.tfds_data_dir": Field("", "str", None, "read a TFDS build from here instead of data.root"),
    "data.backend": Field("auto", "str", _one_of(*BACKENDS), "clip streaming: tf.data or Grain"),
    "data.stride": Field(1, "int", _at_least(1), "frames between the starts of consecutive training clips"),
    "model.variant": Field("maskedskip_unet", "str", _variant, "models.VARIANTS"),
    "model.latent_dim": Field(512, "int", _multiple_of_8, "widths are latent/8, /4, /2, /1"),
    "model.temporal": Field(3, "int", _odd, "frames per clip (1 for unet / masked2d_skip_unet / autoencoder)"),
    "model.masked_kernels": Field("train", "str", _one_of("train", "frozen"),
                                  "'frozen' = the published code (masked-conv kernels never update)"),
    "model.centre_only": Field(True, "bool", None, "compute only the centre frame of the 3-D skip convs"),
    "model.conv_lowering": Field("auto", "str", _one_of(*conv_lowering.LOWERINGS),
                                 "conv compute: 'cpu' fast paths (FFT weight gradients, im2col), XLA's convs, "
                                 "or 'auto' (cpu fast paths on the CPU backend only)"),
    "model.mask_head": Field(False, "bool", None,
                             "also predict the pasted-object map as an extra output channel (needs "
                             "train.paste_prob > 0); scored only with eval.mask_weight > 0"),
    "model.ssmctb.placement": Field("none", "str", _one_of(*SSMCTB_PLACEMENTS),
                                    "SSMCTB blocks: in skip 4, in every skip, or before the last decoder block"),
    "model.ssmctb.dims": Field(2, "int", _one_of(2, 3), "2-D block on the centre skip, or 3-D on the T frames"),
    "model.ssmctb.kernel_prime": Field(1, "int", _at_least(1), "k': side of each live corner sub-kernel"),
    "model.ssmctb.distance": Field(1, "int", _at_least(0), "d: distance of the corners from the masked centre"),
    "model.ssmctb.delta": Field(1.0, "float", _positive, "Huber threshold of the block's self-supervised loss"),
    "model.ssmctb.weight": Field(0.1, "float", _at_least(0), "lambda: weight of that loss in the total"),
    "train.batch_size": Field(16, "int", _at_least(1), "global batch, split over all devices"),
    "train.epochs": Field(10, "int", _at_least(0), "used when train.num_steps is 0"),
    "train.num_steps": Field(0, "int", _at_least(0), "> 0 overrides train.epochs"),
    "train.learning_rate": Field(1e-2, "float", _positive, "Adam"),
    "train.schedule": Field("constant", "str", _one_of(*SCHEDULES), "learning-rate schedule"),
    "train.warmup_steps": Field(0, "int", _at_least(0), "for warmup_cosine"),
    "train.grad_clip_norm": Field(0.0, "float", _at_least(0), "0 = no clipping"),
    "train.seed": Field(0, "int", _at_least(0), "parameter init, rng and data order"),
    "train.checkpoint_every_steps": Field(500, "int", _at_least(1), "also saved at the end and on SIGTERM"),
    "train.keep_checkpoints": Field(3, "int", _at_least(1), "newest N are kept"),
    "train.async_checkpoints": Field(True, "bool", None,
                                     "write checkpoints while training goes on (a SIGKILL mid-write then "
                                     "costs up to interval + write time, not one interval)"),
    "train.log_every_steps": Field(50, "int", _at_least(1), "metrics.jsonl / TensorBoard interval"),
    "train.compute_dtype": Field("auto", "str", _one_of(*COMPUTE_DTYPES),
                                 "'auto' = bfloat16 on GPU/TPU, float32 on CPU; params stay float32"),
    "train.compilation_cache_dir": Field("~/.cache/maskedskip_jax/jax", "str", None,
                                         "JAX persistent compilation cache; '' = off"),
    "train.prefetch": Field(2, "int", _at_least(1), "batches placed on the devices ahead of the step"),
    "train.motion_weighting": Field("none", "str", _one_of(*MOTION_WEIGHTING),
                                    "weight the loss by frame-difference motion, per pixel or per patch"),
    "train.motion_median": Field(0, "int", _one_of(*MEDIAN_SIZES), "median filter before differencing (0 = off)"),
    "train.motion_patch": Field(16, "int", _at_least(1), "patch side for motion_weighting='patch'"),
    "train.motion_uniform_mix": Field(0.0, "float", _fraction, "share of uniform weight mixed into motion weights"),
    "train.paste_prob": Field(0.0, "float", _fraction, "probability that a training clip gets a pasted object"),
    "train.paste_source": Field("mixed", "str", _one_of(*PASTE_SOURCES), "pasted objects: other clips or sprites"),
    "train.mask_loss_weight": Field(1.0, "float", _at_least(0),
                                    "weight of the mask head's binary cross-entropy in the loss"),
    "eval.batch_size": Field(32, "int", _at_least(1), "clips per evaluation batch (global)"),
    "eval.postprocess": Field("none", "str", _postprocess, "frame-score smoothing, e.g. 'median:window=17'"),
    "eval.patch": Field(16, "int", _at_least(1), "frame score = max over patch means of this size"),
    "eval.gaussian_sigma": Field(3.0, "float", _positive, "sigma of the Gaussian row of the post-processing table"),
    "eval.write_videos": Field(False, "bool", None, "also write input | reconstruction | difference videos"),
    "eval.pixel_metrics": Field(True, "bool", None, "pixel AUROC, RBDC and TBDC where the test set has masks"),
    "eval.pixel_size": Field(64, "int", _at_least(8), "pixel metrics on maps resized to at most this side"),
    "eval.region_thresholds": Field(20, "int", _at_least(2), "score thresholds swept for RBDC/TBDC"),
    "eval.hybrid_alpha": Field(1.0, "float", _at_least(0), "frame score = alpha * reconstruction + beta * motion"),
    "eval.hybrid_beta": Field(0.0, "float", _at_least(0), "0 = reconstruction only (the paper's score)"),
    "eval.motion_median": Field(0, "int", _one_of(*MEDIAN_SIZES), "median filter for the 'gradient' motion score"),
    "eval.hybrid_motion": Field("gradient", "str", _one_of(*HYBRID_MOTIONS),
                                "the hybrid's motion term: 'gradient' (centre frame vs neighbours) or a baseline"),
    "eval.hybrid_standardise": Field(False, "bool", None,
                                     "standardise the hybrid's terms by their mean/std on the training videos"),
    "eval.mask_weight": Field(0.0, "float", _at_least(0),
                              "frame score += this * the mask head's patch-pooled map (needs model.mask_head)"),
    "eval.baselines": Field(",".join(BASELINES), "str", _baseline_names,
                            "no-learning baselines scored beside the model (comma-separated; '' = none)"),
}
for _key, _value in SYNTHETIC_DEFAULTS.items():
  SCHEMA[f"data.synthetic.{_key}"] = Field(_value, "int", _at_least(0), "synthetic generator parameter")


def _nest(flat: dict[str, Any]) -> ml_collections.ConfigDict:
  tree = {}
  for key, value in flat.items():
    node = tree
    *parents, leaf = key.split(".")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return ml_collections.ConfigDict(tree)


def with_values(config, values: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with the dotted keys of `values` (e.g. 'model.ssmctb.placement') set."""
  c = copy.deepcopy(config)
  for key, value in values.items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def default_config() -> ml_collections.ConfigDict:
  """Every key at its default; config files override from here."""
  return _nest({k: f.default for k, f in SCHEMA.items()})


def reference_config(dataset: str) -> ml_collections.ConfigDict:
  """The published code's training setting (SPEC section 1) on `dataset`: the real-dataset configs' base.

  Latent 512, 256x256 RGB, T = 3, Adam 1e-2, batch 16, 10 epochs, no post-processing.
  """
  config = default_config()
  config.data.name = dataset
  config.data.image_size = (256, 256)
  config.data.channels = 3
  config.model.variant = "maskedskip_unet"
  config.model.latent_dim = 512
  config.model.temporal = 3
  config.train.batch_size = 16
  config.train.epochs = 10
  config.train.learning_rate = 1e-2
  config.train.checkpoint_every_steps = 200
  config.eval.postprocess = "none"
  return config


def flatten(config) -> dict[str, Any]:
  """{'train.batch_size': 16, ...} for a ConfigDict or nested dicts."""
  out = {}
  items = config.items() if hasattr(config, "items") else []
  for key, value in items:
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
    else:
      out[key] = value
  return out


def unknown_key_message(key: str) -> str:
  close = difflib.get_close_matches(key, SCHEMA, n=1)
  hint = f"; did you mean {close[0]}?" if close else ""
  return f"unknown config key {key}{hint}"


def is_known_key(key: str) -> bool:
  """A leaf key of the schema, or a group of them ('train')."""
  return key in SCHEMA or any(k.startswith(key + ".") for k in SCHEMA)


def _typed(key: str, kind: str, value: Any) -> Any:
  """`value` converted to `kind`, or a UserError naming the key."""
  ok = {"int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "size": (isinstance(value, (tuple, list)) and len(value) == 2
                 and all(isinstance(s, int) and not isinstance(s, bool) for s in value))}[kind]
  if not ok:
    expected = {"size": "(height, width) as two integers"}.get(kind, kind)
    raise UserError(f"config key {key}: expected {expected}, got {value!r}")
  return float(value) if kind == "float" else tuple(value) if kind == "size" else value


def validate(config) -> None:
  """Raise UserError naming the first unknown, missing, mistyped or bad key."""
  flat = flatten(config)
  for key in flat:
    if key not in SCHEMA:
      raise UserError(unknown_key_message(key))
  for key, field in SCHEMA.items():
    if key not in flat:
      raise UserError(f"config key {key} is missing (start the config from config_check.default_config())")
    value = _typed(key, field.kind, flat[key])
    problem = field.check(value) if field.check else None
    if problem:
      raise UserError(f"config key {key}: expected {problem}, got {flat[key]!r}")
  _check_together(flat)


def _check_together(flat: dict[str, Any]) -> None:
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top
  default_t = models.default_temporal(flat["model.variant"])
  if default_t == 1 and flat["model.temporal"] != 1:
    raise UserError(f"config key model.temporal: variant {flat['model.variant']!r} sees single frames; "
                    f"expected 1, got {flat['model.temporal']}")
  if flat["train.num_steps"] == 0 and flat["train.epochs"] == 0:
    raise UserError("config key train.epochs: expected >= 1 when train.num_steps is 0, got 0")
  if flat["model.mask_head"] and flat["train.paste_prob"] == 0:
    # Without pasted objects every target map is all zeros: the head would learn nothing.
    raise UserError("config key model.mask_head: needs train.paste_prob > 0 (the head learns from pasted "
                    "objects' maps), got train.paste_prob=0")
  if flat["eval.mask_weight"] > 0 and not flat["model.mask_head"]:
    raise UserError("config key eval.mask_weight: scores from the mask head's map, so it needs "
                    f"model.mask_head=True; got eval.mask_weight={flat['eval.mask_weight']} without a head")
  if flat["eval.hybrid_alpha"] == flat["eval.hybrid_beta"] == flat["eval.mask_weight"] == 0:
    raise UserError("config key eval.hybrid_alpha: every frame-score weight (eval.hybrid_alpha, eval.hybrid_beta, "
                    "eval.mask_weight) is 0; set one above 0 (hybrid_alpha=1 alone is the paper's score)")
  if flat["data.name"] != "synthetic" and not (flat["data.root"] or flat["data.tfds_data_dir"]):
    raise UserError(f"config key data.root: dataset {flat['data.name']!r} needs its folder "
                    "(e.g. --config.data.root=/path/to/dataset)")
