"""A bundle's files on disk: the manifest and checksummed reads. Needs no JAX, so that a runtime without it
(onnxruntime) reads bundles exactly as `bundle.load` does."""

from collections.abc import Mapping
import hashlib
import json
import math
import os

from maskedskip_jax.errors import UserError

FORMAT = "maskedskip_jax.bundle"
FORMAT_VERSION = 1
PARAMS_FILE = "params.msgpack"
CONFIG_FILE = "model.json"
MANIFEST_FILE = "manifest.json"
ALARM_KEY = "alarm"  # model.json's calibrated alarm threshold, when the export calibrated one
ALARM_SCORE = "reconstruction"  # the frame score predict computes for the U-Net family
AED_MAE_SCORE = "aed_mae"  # and for AED-MAE (its variant's name)
DEFAULT_PATCH = 16  # the frame-score patch (`nn/scoring.py`) of a bundle without an alarm record


def read_json(path: str, data: bytes) -> dict:
  """`data` (the bytes of `path`) as a JSON object, or a one-line UserError."""
  try:
    doc = json.loads(data)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise UserError(f"{path}: not valid JSON ({e.msg if hasattr(e, 'msg') else e})") from None
  if not isinstance(doc, dict):
    raise UserError(f"{path}: expected a JSON object")
  return doc


def manifest(bundle_dir: str) -> dict:
  """The manifest's {file name: {size, sha256}} of a bundle, after checking its format and version."""
  path = os.path.join(bundle_dir, MANIFEST_FILE)
  if not os.path.isdir(bundle_dir):
    raise UserError(f"{bundle_dir}: no such model bundle directory")
  if not os.path.isfile(path):
    raise UserError(f"{bundle_dir}: not a model bundle (no {MANIFEST_FILE})")
  with open(path, "rb") as f:
    doc = read_json(path, f.read())
  files = doc.get("files")
  if doc.get("format") != FORMAT or not isinstance(files, dict):
    raise UserError(f"{path}: not a {FORMAT} manifest")
  if doc.get("format_version", 0) > FORMAT_VERSION:
    raise UserError(
      f"{path}: bundle format {doc.get('format_version')} is newer than this code "
      f"reads ({FORMAT_VERSION}); upgrade maskedskip_jax"
    )
  for name in (PARAMS_FILE, CONFIG_FILE):
    if name not in files:
      raise UserError(f"{path}: does not list {name}")
  return files


def read_verified(bundle_dir: str, name: str, files: Mapping) -> bytes:
  """The bytes of `name`, after checking them against the manifest."""
  path = os.path.join(bundle_dir, name)
  entry = files.get(name)
  if not isinstance(entry, dict) or os.path.basename(name) != name:
    raise UserError(f"{os.path.join(bundle_dir, MANIFEST_FILE)}: no valid entry for {name}")
  if not os.path.isfile(path):
    raise UserError(f"{path}: missing from the model bundle")
  with open(path, "rb") as f:
    data = f.read()
  if len(data) != entry.get("size"):
    raise UserError(f"{path}: {len(data)} bytes, manifest says {entry.get('size')} (truncated or modified)")
  if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
    raise UserError(f"{path}: sha256 does not match manifest.json (file modified or corrupted)")
  return data


def model_config(bundle_dir: str) -> dict:
  """model.json's contents, checked against the manifest."""
  files = manifest(bundle_dir)
  return read_json(os.path.join(bundle_dir, CONFIG_FILE), read_verified(bundle_dir, CONFIG_FILE, files))


def _number(record: Mapping, key: str, where: str, *, minimum: float | None = None, default=None) -> float:
  value = record.get(key, default)
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
  if not ok or (minimum is not None and value < minimum):
    bound = "" if minimum is None else f" >= {minimum:g}"
    raise UserError(f"{where}: alarm record: '{key}' must be a finite number{bound}, got {value!r}")
  return float(value)


def alarm(bundle_dir: str) -> dict | None:
  """The bundle's calibrated alarm (model.json's 'alarm', checked against the manifest), or None if it has none.

  Returned with every key present: threshold, score, patch, postprocess, false_alarm_rate (None if not recorded),
  min_event_seconds and merge_gap_seconds (None if not recorded), calibration ({} if not recorded).
  """
  where = os.path.join(bundle_dir, CONFIG_FILE)
  doc = model_config(bundle_dir)
  record = doc.get(ALARM_KEY)
  if record is None:
    return None
  if not isinstance(record, dict):
    raise UserError(f"{where}: alarm record: expected a JSON object, got {type(record).__name__}")
  # predict computes one frame score per family: the reconstruction's patch maximum, or AED-MAE's Eq. 6.
  score = AED_MAE_SCORE if doc.get("variant") == AED_MAE_SCORE else ALARM_SCORE
  if record.get("score", ALARM_SCORE) != score:
    raise UserError(
      f"{where}: alarm record: calibrated on the {record['score']!r} score; predict computes only the "
      f"{score!r} score for a {doc.get('variant')!r} model"
    )
  patch = record.get("patch", None if score == AED_MAE_SCORE else DEFAULT_PATCH)
  if score == AED_MAE_SCORE and patch is not None:
    raise UserError(f"{where}: alarm record: AED-MAE's score has no patch, got {patch!r}")
  if score != AED_MAE_SCORE and (isinstance(patch, bool) or not isinstance(patch, int) or patch < 1):
    raise UserError(f"{where}: alarm record: 'patch' must be a positive integer, got {patch!r}")
  chain = record.get("postprocess", "none")
  if not isinstance(chain, str) or not chain.strip():
    raise UserError(
      f"{where}: alarm record: 'postprocess' must be a chain string like 'gaussian:sigma=3', got {chain!r}"
    )
  calibration = record.get("calibration", {})
  if not isinstance(calibration, dict):
    raise UserError(f"{where}: alarm record: 'calibration' must be a JSON object, got {calibration!r}")
  optional = {
    key: None if record.get(key) is None else _number(record, key, where, minimum=0)
    for key in ("false_alarm_rate", "min_event_seconds", "merge_gap_seconds")
  }
  return {
    "threshold": _number(record, "threshold", where),
    "score": score,
    "patch": patch,
    "postprocess": chain,
    **optional,
    "calibration": calibration,
  }
