"""The model bundle: a directory holding everything needed to run a trained model.

  params.msgpack       {'params', 'batch_stats'} as numpy, flax msgpack (no pickle),
                       keys sorted so equal values give equal bytes
  model.json           format version, architecture (variant, latent_dim, channels,
                       temporal, skip kernels/masks, ssmctb, mask_head; for AED-MAE its
                       `aed_mae_bundle.record`), image_size, metadata,
                       and "alarm" when a threshold was calibrated (`eval/threshold.py`; older
                       bundles and those exported with data.holdout_share=0 have none)
  inference.stablehlo  optional jax.export of the eval-mode forward at a fixed shape
  encode.onnx          optional: the forward's two halves as ONNX graphs at the same batch, for onnxruntime
  decode.onnx          without jax (`onnx_export.py` writes them, `onnx_runtime.py` runs them)
  manifest.json        sha256 and size of every other file

`save` builds the bundle in a temp directory beside the target and renames it into
place; `load` verifies every checksum before it parses anything.
"""

from collections.abc import Mapping
import dataclasses
import hashlib
import json
import os

from flax import serialization
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax import atomic
from maskedskip_jax.deploy import aed_mae_bundle
from maskedskip_jax.deploy import bundle_files
from maskedskip_jax.deploy import stablehlo_export
from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import dtypes

FORMAT, FORMAT_VERSION = bundle_files.FORMAT, bundle_files.FORMAT_VERSION
PARAMS_FILE, CONFIG_FILE, MANIFEST_FILE = bundle_files.PARAMS_FILE, bundle_files.CONFIG_FILE, bundle_files.MANIFEST_FILE
EXPORT_FILE = "inference.stablehlo"
ARCH_KEYS = ("variant", "latent_dim", "channels", "temporal", "skip_kernels", "skip_masks", "ssmctb", "mask_head")
# Architecture keys added after bundles were first written, with the value older bundles were made with.
_LATER_ARCH_KEYS = {"mask_head": False}
# Settings that change how a model runs, not what its weights mean: not recorded.
_RUNTIME_KEYS = ("dtype", "param_dtype", "centre_only", "conv_lowering")


def _plain_tree(tree) -> dict:
  """Nested dicts with sorted keys and numpy leaves: one canonical form per set of values."""
  if isinstance(tree, Mapping):
    return {str(k): _plain_tree(tree[k]) for k in sorted(tree, key=str)}
  return np.asarray(jax.device_get(tree))


def _architecture(model_config: Mapping) -> dict:
  # Imported here so that load_exported() works without the model code.
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top

  config = dict(model_config)
  if aed_mae_bundle.is_record(config):
    rec = config.get("aed_mae")
    if not isinstance(rec, Mapping):
      raise UserError("model config: an aed_mae model needs its 'aed_mae' record (aed_mae_bundle.record)")
    model = aed_mae_bundle.build(rec, "model config")
    return {"variant": aed_mae_bundle.VARIANT, "channels": model.channels, "temporal": rec["temporal"], "aed_mae": rec}
  unknown = sorted(set(config) - set(ARCH_KEYS) - set(_RUNTIME_KEYS) - {"image_size"})
  if unknown:
    raise UserError(
      f"model config: unknown keys {unknown}; architecture keys are {list(ARCH_KEYS)} (put anything else in metadata)"
    )
  if "variant" not in config:
    raise UserError("model config: 'variant' is required")
  model = models.build(**{k: config[k] for k in ARCH_KEYS if k in config})
  arch = {k: getattr(model, k) for k in ARCH_KEYS}
  arch["ssmctb"] = dataclasses.asdict(arch["ssmctb"])
  return {k: list(v) if isinstance(v, tuple) else v for k, v in arch.items()}


def _build(arch: Mapping, **kwargs):
  if aed_mae_bundle.is_record(arch):
    return aed_mae_bundle.build(arch["aed_mae"], "model.json", kwargs.get("dtype"))
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top

  return models.build(**{k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}, **kwargs)


def _check_shapes(model, variables: dict, where: str) -> None:
  """UserError unless `variables` has exactly the leaves and shapes `model` creates."""
  if hasattr(model, "temporal"):
    x = np.zeros((1, model.temporal, 16, 16, model.channels), np.float32)
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  else:  # AED-MAE takes stacked frames, not clips
    expected = aed_mae_bundle.expected_variables(model)
  expected = {k: v for k, v in expected.items() if k != "losses"}  # SSMCTB losses are not weights
  want = {jax.tree_util.keystr(p): tuple(a.shape) for p, a in jax.tree_util.tree_flatten_with_path(expected)[0]}
  have = {jax.tree_util.keystr(p): tuple(np.shape(a)) for p, a in jax.tree_util.tree_flatten_with_path(variables)[0]}
  wrong = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
  if wrong:
    shown = ", ".join(f"{k} {have.get(k)} != {want.get(k)}" for k in wrong[:10])
    variant = getattr(model, "variant", aed_mae_bundle.VARIANT)
    raise UserError(f"{where}: variables do not fit the {variant} model config: {shown}")


def _checked_alarm(alarm: Mapping, where: str) -> dict:
  """The alarm record as given, once it has every key `predict` reads (`threshold.RECORD_KEYS`)."""
  from maskedskip_jax.eval import threshold  # pylint: disable=g-import-not-at-top

  missing = [k for k in threshold.RECORD_KEYS if k not in alarm]
  if missing or alarm.get("threshold") is None:
    raise UserError(
      f"{where}: the alarm record lacks {missing or ['threshold']}; expected threshold.calibrate's record"
    )
  return dict(alarm)


def _json_bytes(doc) -> bytes:
  return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _replaceable(out_dir: str) -> None:
  if not os.path.exists(out_dir):
    return
  if not os.path.isdir(out_dir):
    raise UserError(f"{out_dir}: exists and is not a directory; refusing to replace it with a model bundle")
  entries = os.listdir(out_dir)
  if entries and MANIFEST_FILE not in entries:
    raise UserError(f"{out_dir}: exists, is not empty and is not a model bundle; refusing to replace it")


def _write_dir(out_dir: str, files: Mapping[str, bytes]) -> None:
  """Writes `files` into a fresh directory at `out_dir`, replacing an old bundle there."""
  _replaceable(os.path.abspath(out_dir))
  with atomic.directory(out_dir) as tmp:
    for fname, data in files.items():
      with open(os.path.join(tmp, fname), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save(
  out_dir: str,
  variables: Mapping,
  model_config: Mapping,
  metadata: Mapping | None = None,
  example_shape=None,
  onnx: bool = False,
  alarm: Mapping | None = None,
) -> str:
  """Writes a bundle for `variables` ({'params', 'batch_stats'}) of the model `model_config` describes.

  `model_config` holds `models.build` arguments (at least 'variant') and optionally 'image_size' (H, W).
  `example_shape` (B, T, H, W, C) also exports the float32 eval-mode forward for that input shape, and `onnx` its
  ONNX graphs at that batch, checked against jax (`onnx_export.OnnxExportError` if that fails). Arrays must be
  fully addressable (gather sharded ones first). `alarm`: the alarm threshold record (`threshold.calibrate`), stored
  in model.json under "alarm"; None leaves the key out. Returns the bundle's absolute path.
  """
  arch = _architecture(model_config)
  model = _build(arch)
  tree = _plain_tree({"params": variables["params"], "batch_stats": variables.get("batch_stats", {})})
  _check_shapes(model, tree, out_dir)
  image_size = model_config.get("image_size")
  is_aed_mae = aed_mae_bundle.is_record(arch)
  if example_shape is not None:
    example_shape = tuple(int(d) for d in example_shape)
    from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top

    if not is_aed_mae:
      models.check_input_shape(model, example_shape)
    image_size = image_size or (example_shape[1:3] if is_aed_mae else example_shape[2:4])
  doc = {
    "format": FORMAT,
    "format_version": FORMAT_VERSION,
    **arch,
    "image_size": None if image_size is None else [int(d) for d in image_size],
    "metadata": dict(metadata or {}),
    "export": None,
    "onnx": None,
    **({"alarm": _checked_alarm(alarm, out_dir)} if alarm is not None else {}),
  }
  files = {PARAMS_FILE: serialization.msgpack_serialize(tree)}
  if example_shape is not None:
    apply_fn = lambda v, x: model.apply(v, x, train=False)
    files[EXPORT_FILE] = stablehlo_export.serialize(apply_fn, tree, example_shape)
    doc["export"] = {
      "file": EXPORT_FILE,
      "input_shape": list(example_shape),
      "dtype": "float32",
      "platforms": list(stablehlo_export.PLATFORMS),
      "returns": aed_mae_bundle.RETURNS if is_aed_mae else "recon (B, H, W, C)",
    }
  if onnx and is_aed_mae:
    from maskedskip_jax.deploy import onnx_export  # pylint: disable=g-import-not-at-top

    raise onnx_export.OnnxExportError("ONNX graphs cover the U-Net family; an AED-MAE bundle runs with jax")
  if onnx:
    from maskedskip_jax.deploy import onnx_export  # pylint: disable=g-import-not-at-top

    onnx_files, doc["onnx"] = onnx_export.export(model, tree, example_shape)
    files.update(onnx_files)
  try:
    files[CONFIG_FILE] = _json_bytes(doc)
  except TypeError as e:
    raise UserError(f"{out_dir}: metadata must be JSON-serializable ({e})") from None
  manifest = {
    "format": FORMAT,
    "format_version": FORMAT_VERSION,
    "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in sorted(files.items())},
  }
  files[MANIFEST_FILE] = _json_bytes(manifest)
  _write_dir(out_dir, files)
  return os.path.abspath(out_dir)


def verify(bundle_dir: str) -> dict:
  """Checks every file the manifest lists; returns model.json's contents."""
  files = bundle_files.manifest(bundle_dir)
  for name in sorted(files):
    if name != CONFIG_FILE:
      bundle_files.read_verified(bundle_dir, name, files)
  return _config(bundle_dir, files)


def _config(bundle_dir: str, files: Mapping) -> dict:
  path = os.path.join(bundle_dir, CONFIG_FILE)
  doc = bundle_files.read_json(path, bundle_files.read_verified(bundle_dir, CONFIG_FILE, files))
  doc = {**_LATER_ARCH_KEYS, **doc}
  keys = ("variant", "channels", "temporal", "aed_mae") if aed_mae_bundle.is_record(doc) else ARCH_KEYS
  missing = [k for k in keys if k not in doc]
  if doc.get("format") != FORMAT or missing:
    raise UserError(f"{path}: not a {FORMAT} model config (missing {missing})")
  return doc


def _variables(bundle_dir: str, files: Mapping) -> dict:
  data = bundle_files.read_verified(bundle_dir, PARAMS_FILE, files)
  try:
    tree = serialization.msgpack_restore(data)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"{os.path.join(bundle_dir, PARAMS_FILE)}: unreadable ({type(e).__name__})") from None
  if not isinstance(tree, dict) or "params" not in tree:
    raise UserError(f"{os.path.join(bundle_dir, PARAMS_FILE)}: expected {{'params', 'batch_stats'}}")
  return tree


def load(bundle_dir: str, expect_variant: str | None = None, dtype=None):
  """Verifies and reads a bundle: (model, variables, model_config).

  `model_config` is model.json's contents. The model computes in float32 unless
  `dtype` says otherwise. Any missing, truncated or modified file, or a variant
  other than `expect_variant`, raises UserError.
  """
  files = bundle_files.manifest(bundle_dir)
  config = _config(bundle_dir, files)
  if expect_variant is not None and config["variant"] != expect_variant:
    raise UserError(f"{bundle_dir}: holds a {config['variant']!r} model, expected {expect_variant!r}")
  variables = _variables(bundle_dir, files)
  kwargs = {} if dtype is None else {"dtype": dtype}
  arch_keys = ("variant", "aed_mae") if aed_mae_bundle.is_record(config) else ARCH_KEYS
  model = _build({k: config[k] for k in arch_keys}, **kwargs)
  _check_shapes(model, variables, os.path.join(bundle_dir, PARAMS_FILE))
  return model, jax.tree.map(jnp.asarray, variables), config


def load_for_config(config, bundle_dir: str):
  """(model, variables, checkpoint step, source) of a bundle that must match `config`'s variant, channels and T.

  The model computes in the config's compute dtype; the tuple is what `eval.evaluate.run(trained=...)` takes.
  """
  model, variables, model_config = load(
    bundle_dir, expect_variant=config.model.variant, dtype=dtypes.compute_dtype(config.train.compute_dtype)
  )
  for key, want in (("channels", config.data.channels), ("temporal", config.model.temporal)):
    if model_config[key] != want:
      raise UserError(f"{bundle_dir}: the bundle's model has {key}={model_config[key]}, the config says {want}")
  step = (model_config.get("metadata") or {}).get("checkpoint_step")
  return model, variables, step, os.path.abspath(bundle_dir)


def load_exported(bundle_dir: str) -> stablehlo_export.ExportedModel:
  """The bundle's exported inference function, ready to call; needs no model code."""
  files = bundle_files.manifest(bundle_dir)
  if EXPORT_FILE not in files:
    raise UserError(f"{bundle_dir}: has no {EXPORT_FILE} (save it with example_shape=...)")
  blob = bundle_files.read_verified(bundle_dir, EXPORT_FILE, files)
  return stablehlo_export.ExportedModel(blob, _variables(bundle_dir, files), os.path.join(bundle_dir, EXPORT_FILE))
