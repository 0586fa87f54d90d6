"""The config schema: every key, its default and what values it accepts.

Config files (configs/*.py) start from `default_config()` and override what they need, so every config has every
key. It is a type-safe ml_collections ConfigDict: each key's type is its default's, a value of another type is
refused where it is assigned (an int may stand for a float), and `--config.key=value` is parsed by that type.
Each key's value rule (a check from `config_fields`, imported as `f`) lives here beside its default;
`validation.validate` applies them. Each list of choices is owned by the module that uses it and imported from there.
"""

import copy
from typing import Any

import ml_collections

from data_pipeline import anomaly_paste
from data_pipeline import pipeline
from data_pipeline import registry
from data_pipeline import synthetic
from maskedskip_jax import config_fields as f
from maskedskip_jax.eval import aed_mae_scorer
from maskedskip_jax.eval import baselines
from maskedskip_jax.eval import hybrid
from maskedskip_jax.eval import threshold
from maskedskip_jax.nn import cae
from maskedskip_jax.nn import conv_lowering
from maskedskip_jax.nn import dtypes
from maskedskip_jax.nn import models
from maskedskip_jax.nn import motion
from maskedskip_jax.nn import ssmctb
from maskedskip_jax.train import aed_mae_step
from maskedskip_jax.train import optim
from maskedskip_jax.train import step

SCHEMA: dict[str, f.Field] = {
  "data.name": f.Field("synthetic", f.one_of(*registry.KNOWN), "dataset layout (data_pipeline.registry)"),
  "data.root": f.Field("", None, "dataset folder; '' for synthetic means generate into data.cache_dir"),
  "data.image_size": f.Field(
    (64, 64), f.image_size, "frames are resized to (height, width); one side alone (128) means a square"
  ),
  "data.channels": f.Field(1, f.one_of(1, 3), "1 = grey, 3 = RGB"),
  "data.cache_dir": f.Field(
    "~/.cache/maskedskip_jax", None, "decoded-frame stores and generated synthetic data; '' = keep in memory"
  ),
  "data.tfds_data_dir": f.Field("", None, "read a TFDS build from here instead of data.root"),
  "data.backend": f.Field("auto", f.one_of("auto", *pipeline.BACKENDS), "clip streaming: tf.data or Grain"),
  "data.stride": f.Field(1, f.at_least(1), "frames between the starts of consecutive training clips"),
  "data.holdout_share": f.Field(
    0.1, f.below_one, "share of the training videos kept out of training to calibrate the alarm threshold"
  ),
  "data.fps": f.Field(0.0, f.at_least(0), "footage frame rate (alarm events); 0 = the layout's (registry.FPS) else 25"),
  "model.variant": f.Field(
    "maskedskip_unet",
    f.one_of(*models.VARIANTS, aed_mae_step.VARIANT, cae.VARIANT),
    "models.VARIANTS (the U-Net family), or 'aed_mae' (AED-MAE, its settings under model.aed_mae)",
  ),
  "model.latent_dim": f.Field(512, f.multiple_of_8, "widths are latent/8, /4, /2, /1"),
  "model.temporal": f.Field(3, f.odd, "frames per clip (1 for unet / masked2d_skip_unet / autoencoder)"),
  "model.masked_kernels": f.Field(
    "train", f.one_of(*optim.MASKED_KERNEL_MODES), "'frozen' = the published code (masked-conv kernels never update)"
  ),
  "model.centre_only": f.Field(True, None, "compute only the centre frame of the 3-D skip convs"),
  "model.conv_lowering": f.Field(
    "auto",
    f.one_of(*conv_lowering.LOWERINGS),
    "conv compute: 'cpu' fast paths (FFT weight gradients, im2col), XLA's convs, "
    "or 'auto' (cpu fast paths on the CPU backend only)",
  ),
  "model.mask_head": f.Field(
    False,
    None,
    "also predict the pasted-object map as an extra output channel (needs "
    "train.paste_prob > 0); scored only with eval.mask_weight > 0",
  ),
  "model.ssmctb.placement": f.Field(
    "none",
    f.one_of(*ssmctb.PLACEMENTS),
    "SSMCTB blocks: in skip 4, in every skip, before the last decoder block, or 'penultimate' (the paper's: "
    "instead of the last decoder block's conv layer)",
  ),
  "model.ssmctb.dims": f.Field(2, f.one_of(2, 3), "2-D block on the centre skip, or 3-D on the T frames (skips only)"),
  "model.ssmctb.depth": f.Field(
    "paper",
    f.one_of(*ssmctb.DEPTHS),
    "3-D kernel depth: 'paper' = 2k'+2d+1 (corners d frames from the centre; needs model.temporal >= that) or "
    "'clip' = T (corners in the first and last k' frames)",
  ),
  "model.ssmctb.kernel_prime": f.Field(1, f.at_least(1), "k': side of each live corner sub-kernel"),
  "model.ssmctb.distance": f.Field(1, f.at_least(0), "d: distance of the corners from the masked centre"),
  "model.ssmctb.delta": f.Field(1.0, f.positive, "Huber threshold of the block's self-supervised loss"),
  "model.ssmctb.weight": f.Field(
    0.1, f.at_least(0), "lambda: weight of that loss in the total (the seed text lost the paper's; SSPCAB's 0.1)"
  ),
  "model.aed_mae.patch": f.Field(
    16, f.at_least(1), "d: token side (paper: 16 Avenue, 8 ShanghaiTech/UBnormal, 4 Ped2)"
  ),
  "model.aed_mae.mask_ratio": f.Field(0.5, f.below_one, "share of tokens dropped in training (the authors' code)"),
  "model.aed_mae.frame_offset": f.Field(
    3, f.at_least(1), "input: frames t - offset, t, t + offset on channels (authors' input_3d); T = 2 * offset + 1"
  ),
  "model.aed_mae.embed_dim": f.Field(256, f.at_least(1), "encoder width"),
  "model.aed_mae.depth": f.Field(3, f.at_least(1), "encoder CvT blocks"),
  "model.aed_mae.decoder_dim": f.Field(128, f.at_least(1), "decoder width"),
  "model.aed_mae.decoder_depth": f.Field(3, f.at_least(2), "teacher decoder blocks, the first shared with the student"),
  "model.aed_mae.student_depth": f.Field(1, f.at_least(1), "student decoder blocks after the shared one"),
  "model.aed_mae.heads": f.Field(4, f.at_least(1), "attention heads per block; divides embed_dim and decoder_dim"),
  "model.aed_mae.dropout": f.Field(0.1, f.fraction, "MLP dropout (the authors' code)"),
  "model.aed_mae.motion_weights": f.Field(True, None, "Eq. 1-2 token weights (False: uniform; Table 2's first row)"),
  "model.aed_mae.anomaly_maps": f.Field(
    True, None, "the anomaly map is a target channel, boosts the weights and is scored (Table 2)"
  ),
  "model.aed_mae.classifier": f.Field(True, None, "Eq. 5's [CLS] head is trained and scored (Table 2)"),
  "train.batch_size": f.Field(16, f.at_least(1), "global batch, split over all devices"),
  "train.epochs": f.Field(10, f.at_least(0), "used when train.num_steps is 0"),
  "train.num_steps": f.Field(0, f.at_least(0), "> 0 overrides train.epochs"),
  "train.learning_rate": f.Field(1e-2, f.positive, "Adam"),
  "train.schedule": f.Field("constant", f.one_of(*optim.SCHEDULES), "learning-rate schedule"),
  "train.warmup_steps": f.Field(0, f.at_least(0), "for warmup_cosine"),
  "train.decay_factor": f.Field(0.95, f.open_fraction, "step_decay: the rate is multiplied by this every decay period"),
  "train.decay_every_epochs": f.Field(10, f.at_least(1), "step_decay: the decay period, in epochs"),
  "train.early_stopping_patience": f.Field(0, f.at_least(0), "epochs without a lower held-out loss to stop; 0 = off"),
  "train.augment": f.Field(False, None, "random crop (resized back), left-right flip and rotation of training clips"),
  "train.augment_crop": f.Field(0.8, f.crop, "augment: the smallest crop side, as a share of the frame's"),
  "train.augment_degrees": f.Field(10.0, f.at_least(0), "augment: the largest rotation either way, in degrees"),
  "train.hybrid_alpha": f.Field(1.0, f.at_least(0), "cae: loss = alpha * MSE + beta * motion-weighted MSE"),
  "train.hybrid_beta": f.Field(1.0, f.at_least(0), "cae: the motion term's weight (the paper gives neither)"),
  "train.grad_clip_norm": f.Field(0.0, f.at_least(0), "0 = no clipping"),
  "train.seed": f.Field(0, f.at_least(0), "parameter init, rng and data order"),
  "train.checkpoint_every_steps": f.Field(500, f.at_least(1), "also saved at the end and on SIGTERM"),
  "train.keep_checkpoints": f.Field(3, f.at_least(1), "newest N are kept"),
  "train.async_checkpoints": f.Field(
    True,
    None,
    "write checkpoints while training goes on (a SIGKILL mid-write then "
    "costs up to interval + write time, not one interval)",
  ),
  "train.log_every_steps": f.Field(50, f.at_least(1), "metrics.jsonl / TensorBoard interval"),
  "train.compute_dtype": f.Field(
    "auto", f.one_of(*dtypes.COMPUTE_DTYPES), "'auto' = bfloat16 on GPU/TPU, float32 on CPU; params stay float32"
  ),
  "train.compilation_cache_dir": f.Field(
    "~/.cache/maskedskip_jax/jax", None, "JAX persistent compilation cache; '' = off"
  ),
  "train.prefetch": f.Field(2, f.at_least(1), "batches placed on the devices ahead of the step"),
  "train.motion_weighting": f.Field(
    "none", f.one_of(*step.MOTION_WEIGHTINGS), "weight the loss by frame-difference motion, per pixel or per patch"
  ),
  "train.motion_median": f.Field(0, f.one_of(*motion.MEDIAN_SIZES), "median filter before differencing (0 = off)"),
  "train.motion_patch": f.Field(16, f.at_least(1), "patch side for motion_weighting='patch'"),
  "train.motion_uniform_mix": f.Field(0.0, f.fraction, "share of uniform weight mixed into motion weights"),
  "train.paste_prob": f.Field(0.0, f.fraction, "probability that a training clip gets a pasted object"),
  "train.paste_source": f.Field(
    "mixed", f.one_of(*anomaly_paste.SOURCES), "pasted objects: other clips, sprites, or train.paste_dir's cut-outs"
  ),
  "train.paste_blend": f.Field("hard", f.one_of(*anomaly_paste.BLENDS), "hard edges, or feathered (AED-MAE blends)"),
  "train.paste_dir": f.Field("", None, "folder of cut-out object clips with masks, for paste_source='cutouts'"),
  "train.stage2_fraction": f.Field(
    40 / 140,
    f.below_one,
    "aed_mae: share of the steps that train the student alone (paper: 100 + 40 epochs; 0: no self-distillation)",
  ),
  "train.micro_batches": f.Field(
    1, f.at_least(1), "aed_mae: gradients of this many parts of each batch averaged into one update (memory)"
  ),
  "train.mask_loss_weight": f.Field(1.0, f.at_least(0), "weight of the mask head's binary cross-entropy in the loss"),
  "eval.aed_mae.alpha": f.Field(0.4, f.at_least(0), "aed_mae score (Eq. 6): weight of the teacher's error"),
  "eval.aed_mae.beta": f.Field(0.3, f.at_least(0), "aed_mae score: weight of the teacher-student gap"),
  "eval.aed_mae.gamma": f.Field(0.3, f.at_least(0), "aed_mae score: weight of the classifier's probability"),
  "eval.aed_mae.box": f.Field(9, f.odd_positive, "aed_mae score: side of the 3-D mean filter (the authors' code)"),
  "eval.aed_mae.sigma": f.Field(
    11.0, f.positive, "aed_mae score: temporal Gaussian sigma (authors: 11 Avenue, 282 SHT)"
  ),
  "eval.aed_mae.taps": f.Field(37, f.odd_positive, "aed_mae score: temporal Gaussian taps (1 = none)"),
  "eval.aed_mae.masking": f.Field(
    "cover", f.one_of(*aed_mae_scorer.MASKING), "aed_mae score: test-time token dropping (eval/aed_mae_scorer.py)"
  ),
  "eval.aed_mae.draws": f.Field(1, f.at_least(1), "aed_mae score: independent test-time maskings averaged per frame"),
  "eval.aed_mae.mask_seed": f.Field(0, f.at_least(0), "aed_mae score: seed of the test-time token dropping"),
  "eval.batch_size": f.Field(32, f.at_least(1), "clips per evaluation batch (global)"),
  "eval.postprocess": f.Field("none", f.postprocess_chain, "frame-score smoothing, e.g. 'median:window=17'"),
  "eval.patch": f.Field(16, f.at_least(1), "frame score = max over patch means of this size"),
  "eval.gaussian_sigma": f.Field(3.0, f.positive, "sigma of the Gaussian row of the post-processing table"),
  "eval.write_videos": f.Field(False, None, "also write input | reconstruction | difference videos"),
  "eval.pixel_metrics": f.Field(True, None, "pixel AUROC, RBDC and TBDC where the test set has masks"),
  "eval.pixel_size": f.Field(64, f.at_least(8), "pixel metrics on maps resized to at most this side"),
  "eval.region_thresholds": f.Field(20, f.at_least(2), "score thresholds swept for RBDC/TBDC"),
  "eval.hybrid_alpha": f.Field(1.0, f.at_least(0), "frame score = alpha * reconstruction + beta * motion"),
  "eval.hybrid_beta": f.Field(0.0, f.at_least(0), "0 = reconstruction only (the paper's score)"),
  "eval.motion_median": f.Field(0, f.one_of(*motion.MEDIAN_SIZES), "median filter for the 'gradient' motion score"),
  "eval.hybrid_motion": f.Field(
    "gradient",
    f.one_of(*hybrid.MOTIONS),
    "the hybrid's motion term: 'gradient' (centre frame vs neighbours) or a baseline",
  ),
  "eval.hybrid_standardise": f.Field(
    False, None, "standardise the hybrid's terms by their mean/std on the training videos"
  ),
  "eval.mask_weight": f.Field(
    0.0, f.at_least(0), "frame score += this * the mask head's patch-pooled map (needs model.mask_head)"
  ),
  "eval.baselines": f.Field(
    ",".join(baselines.BASELINES),
    f.baseline_names,
    "no-learning baselines scored beside the model (comma-separated; '' = none)",
  ),
  "eval.false_alarm_rate": f.Field(0.01, f.open_fraction, "share of held-out normal frames above the alarm threshold"),
  "eval.alarm_postprocess": f.Field(threshold.DEFAULT_POSTPROCESS, threshold.postprocess_problem, "alarm smoothing"),
  "eval.min_event_seconds": f.Field(0.5, f.at_least(0), "alarm events shorter than this are dropped"),
  "eval.merge_gap_seconds": f.Field(1.0, f.at_least(0), "alarm events this close merge into one"),
  "export.onnx": f.Field(
    "off", f.one_of("off", "auto", "on"), "ONNX graphs in the bundle: 'auto' when jax2onnx converts, 'on' or fail"
  ),
}
for _key, _value in synthetic.DEFAULTS.items():
  SCHEMA[f"data.synthetic.{_key}"] = f.Field(_value, f.at_least(0), "synthetic generator parameter")


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
