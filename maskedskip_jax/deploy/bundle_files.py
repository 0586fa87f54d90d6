"""A bundle's files on disk: the manifest and checksummed reads. Needs no JAX, so that a runtime without it
(onnxruntime) reads bundles exactly as `bundle.load` does."""

from collections.abc import Mapping
import hashlib
import json
import os

from maskedskip_jax.errors import UserError

FORMAT = "maskedskip_jax.bundle"
FORMAT_VERSION = 1
PARAMS_FILE = "params.msgpack"
CONFIG_FILE = "model.json"
MANIFEST_FILE = "manifest.json"


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
