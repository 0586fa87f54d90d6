"""`--mode=export`: the workdir's newest checkpoint as a model bundle in `workdir/export/`.

  python -m maskedskip_jax.main --config=configs/ped2.py --workdir=runs/ped2 --mode=export

The bundle (see `bundle.py`) holds the parameters and batch statistics, the model
config, a checksum manifest and the eval-mode forward serialized with jax.export
for clips of shape (batch, T, H, W, C) at the config's image size. The same
checkpoint always gives byte-identical files: nothing time- or host-dependent is
recorded. The bundle is built beside `export/` and renamed into place, so an
export that fails leaves the previous one as it was.

The bundle's model.json holds the alarm threshold under "alarm" (`eval/threshold.py`): calibrated for this
checkpoint on the held-out share of the training videos (data.holdout_share), at eval.false_alarm_rate. With
data.holdout_share=0 there is no held-out footage and the bundle has no "alarm"; export says so in one line.

With `--config.export.onnx=auto` (or `on`) the bundle also holds that forward as ONNX
graphs at the same batch (`onnx_export.py`, needs the `onnx` extra), for
`predict --backend onnxruntime`. Under 'auto' a model they cannot convert is exported
without them and a warning; under 'on' that is a one-line error.

An AED-MAE checkpoint (model.variant=aed_mae) is exported with its forward over stacked frames (batch, H, W, 3C)
and the Eq. 6 score settings it is evaluated with (`aed_mae_bundle.py`); its alarm is calibrated on that score.
ONNX graphs cover the U-Net family only.
"""

import dataclasses
import functools
import os
import sys

import jax

from maskedskip_jax import config as config_lib
from maskedskip_jax.deploy import aed_mae_bundle
from maskedskip_jax.deploy import bundle
from maskedskip_jax.deploy import onnx_export
from maskedskip_jax.errors import UserError
from maskedskip_jax.train import compile_cache
from maskedskip_jax.train import sharding
from maskedskip_jax.train import state as train_state

EXPORT_DIR = "export"
DEFAULT_BATCH_SIZE = 1
# Local paths say nothing about the model and would leak the exporting machine's layout.
_PRIVATE_KEYS = ("data.root", "data.cache_dir", "data.tfds_data_dir", "train.compilation_cache_dir")


def export_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), EXPORT_DIR)


def _batch_size(config, batch_size: int | None) -> int:
  if batch_size is None:
    # A future `export.batch_size` config key is honoured; the schema has none today.
    section = config.get("export") or {}
    batch_size = section.get("batch_size", DEFAULT_BATCH_SIZE)
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise UserError(f"export batch size: expected an integer >= 1, got {batch_size!r}")
  return batch_size


def _config_name() -> str | None:
  """The --config file's name when this runs under main.py's flags, else None."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if "config" not in flags.FLAGS or not flags.FLAGS.is_parsed():
    return None
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  path = config_flags.get_config_filename(flags.FLAGS["config"])
  return os.path.splitext(os.path.basename(path.split(":")[0]))[0] or None


_ONNX_MODES = {"off": False, "auto": None, "on": True}


def _onnx(config, onnx: bool | None) -> bool | None:
  """`onnx` as given, else the config's export.onnx ('off' when the config predates the key)."""
  if onnx is None:
    onnx = _ONNX_MODES[(config.get("export") or {}).get("onnx", "off")]
  return onnx


def _is_aed_mae(config) -> bool:
  return config.model.variant == aed_mae_bundle.VARIANT


def _aed_mae_record(config, model) -> dict:
  from maskedskip_jax.eval import aed_mae_scorer  # pylint: disable=g-import-not-at-top

  return aed_mae_bundle.record(model, config.model.aed_mae.frame_offset, aed_mae_scorer.settings(config))


def _model_config(config, model) -> dict:
  """What model.json records of the architecture (`bundle.save`'s model_config)."""
  if _is_aed_mae(config):
    record = _aed_mae_record(config, model)
    return {"variant": aed_mae_bundle.VARIANT, "aed_mae": record, "image_size": list(config.data.image_size)}
  return {
    "variant": model.variant,
    "latent_dim": model.latent_dim,
    "channels": model.channels,
    "temporal": model.temporal,
    "skip_kernels": model.skip_kernels,
    "skip_masks": model.skip_masks,
    "ssmctb": dataclasses.asdict(model.ssmctb),
    "mask_head": model.mask_head,
    "image_size": list(config.data.image_size),
  }


def _alarm(config, workdir: str, model, variables, step: int) -> dict | None:
  """The alarm record of this checkpoint, calibrated on the held-out share of the training split; None without one."""
  from maskedskip_jax.eval import streaming  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.eval import threshold  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.train import inputs  # pylint: disable=g-import-not-at-top

  if config.data.holdout_share == 0:
    print("export: no alarm threshold in the bundle: data.holdout_share is 0, so no normal footage was held out")
    return None
  train = inputs.load_split(config, workdir, "train", all_processes=False)  # process 0 alone gets here
  if _is_aed_mae(config):
    scorer = aed_mae_bundle.scorer(
      model, variables, config.data.image_size, _aed_mae_record(config, model), config.eval.batch_size
    )
  else:
    scorer = streaming.StreamingScorer(
      model, variables, config.data.image_size, batch_size=config.eval.batch_size, patch=config.eval.patch
    )
  record = threshold.calibrate(threshold.plan(config, train, step), scorer)
  if record["calibration"]["warning"]:
    print(f"warning: alarm threshold: {record['calibration']['warning']}", file=sys.stderr)
  return record


def run(
  config, workdir: str, *, batch_size: int | None = None, config_name: str | None = None, onnx: bool | None = None
) -> str:
  """Writes the newest checkpoint of `workdir` as a bundle in `workdir/export/`; returns its path.

  `batch_size` fixes the exported functions' batch dimension (default 1).
  `config_name` is recorded in the metadata (default: the --config file's name).
  `onnx`: True writes the ONNX graphs or fails with a one-line error, False skips them, None follows the config's
  export.onnx ('auto' writes them when jax2onnx and onnxruntime are installed and the conversion works).
  """
  batch = _batch_size(config, batch_size)
  onnx = _onnx(config, onnx)
  compile_cache.enable(config.train.compilation_cache_dir)
  model, variables, step = train_state.restore_variables(config, workdir)
  out_dir = export_dir(workdir)
  if jax.process_index() != 0:
    return out_dir  # every process restored the same weights; process 0 writes
  variables = sharding.host_copy(variables)
  alarm = _alarm(config, workdir, model, variables, step)
  model_config = _model_config(config, model)
  metadata = {
    "checkpoint_step": step,
    "dataset": config.data.name,
    "config_name": config_name if config_name is not None else _config_name(),
    "masked_kernels": config.model.masked_kernels,
    "training_config": config_lib.to_json(config, exclude=_PRIVATE_KEYS),
  }
  if _is_aed_mae(config):
    example_shape = aed_mae_bundle.input_shape(batch, config.data.image_size, model.channels)
  else:
    example_shape = (batch, model.temporal, *config.data.image_size, model.channels)
  save = functools.partial(
    bundle.save, out_dir, variables, model_config, metadata, example_shape=example_shape, alarm=alarm
  )
  with_onnx = onnx_export.available() if onnx is None else onnx
  try:
    path = save(onnx=with_onnx)
  except onnx_export.OnnxExportError as e:
    if onnx:
      raise
    print(f"warning: exporting without ONNX graphs: {e}", file=sys.stderr)
    path, with_onnx = save(onnx=False), False
  graphs = " and ONNX graphs" if with_onnx else ""
  if alarm:
    graphs += (
      f", alarm threshold {alarm['threshold']:.6g} at {alarm['false_alarm_rate'] * 100:g}% held-out false alarms"
    )
  print(f"exported checkpoint step {step} ({config.model.variant}, input {example_shape}{graphs}) -> {path}")
  return path
