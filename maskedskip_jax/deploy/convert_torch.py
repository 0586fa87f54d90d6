"""Import a state_dict saved by the published PyTorch code into a model bundle.

  python -m maskedskip_jax.convert_torch --checkpoint REF.pt --variant maskedskip_unet \
      --latent-dim 512 --channels 3 --temporal 3 --out BUNDLE_DIR

The expected PyTorch keys are derived from the Flax parameter tree of the chosen
variant, so every Flax leaf has exactly one source and nothing is imported by
accident. torch is an optional extra, imported only when a `.pt` file is read.
"""

import hashlib
import os
import re

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.deploy import bundle
from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import models

_TORCH_LEAF = {
  "kernel": "weight",
  "masked_kernel": "weight",
  "bias": "bias",
  "scale": "weight",
  "mean": "running_mean",
  "var": "running_var",
}
# Wrappers that training scripts put around the state_dict, and prefixes that
# nn.DataParallel / torch.compile put in front of every key.
_WRAPPER_KEYS = ("state_dict", "model_state_dict")
_KEY_PREFIXES = ("module.", "_orig_mod.")
_MAX_LISTED = 20


def _torch_module(path: tuple[str, ...]) -> str:
  """Flax module path -> reference module name, e.g. ('encoder_1', 'convs_0') -> 'encoder.conv_1.convs.0'."""
  parts = []
  for name in path:
    if m := re.fullmatch(r"(encoder|decoder)_(\d+)", name):
      parts += [m[1], f"conv_{m[2]}"]
    elif m := re.fullmatch(r"convs_(\d+)", name):
      parts += ["convs", m[1]]
    else:
      parts.append(name)
  return ".".join(parts)


def torch_layout(model: models.MaskedSkipUNet) -> tuple[dict, dict, set]:
  """What a reference state_dict for `model` holds.

  Returns (leaves, masks, optional): `leaves` maps each Flax leaf path
  ('params'|'batch_stats', *modules, name) to (torch key, torch shape); `masks`
  maps each `filter_mask` key to the mask expected there; `optional` names keys
  that carry no learned value (BatchNorm's counter, the masks) and may be absent.
  """
  x = jnp.zeros((1, model.temporal, 16, 16, model.channels), jnp.float32)
  with layers.kernel_masks() as module_masks:
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  flat = traverse_util.flatten_dict(shapes)
  leaves, masks, optional = {}, {}, set()
  for path, leaf in flat.items():
    collection, module, name = path[0], path[1:-1], path[-1]
    masked = ("params", *module, "masked_kernel") in flat
    prefix = _torch_module(module) + (".conv" if masked else "")
    shape = tuple(leaf.shape)
    if name.endswith("kernel"):
      shape = (shape[-1], shape[-2], *shape[:-2])
    leaves[path] = (f"{prefix}.{_TORCH_LEAF[name]}", shape)
    if name == "masked_kernel":
      key = f"{_torch_module(module)}.filter_mask"
      masks[key] = module_masks[module][..., 0, 0]  # the reference stores the kernel's mask without channel axes
      optional.add(key)
    if collection == "batch_stats" and name == "mean":
      optional.add(f"{prefix}.num_batches_tracked")
  return leaves, masks, optional


def _listing(label: str, items: list[str]) -> str:
  shown = ", ".join(items[:_MAX_LISTED])
  more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
  return f"{label} [{shown}{more}]"


def convert_state_dict(state_dict: dict, variant: str, latent_dim: int, channels: int, temporal: int) -> dict:
  """Reference state_dict (key -> numpy array) -> {'params': ..., 'batch_stats': ...} numpy trees.

  Raises UserError listing every missing, unexpected or mis-shaped key.
  """
  model = models.build(variant, latent_dim=latent_dim, channels=channels, temporal=temporal)
  leaves, masks, optional = torch_layout(model)
  arrays = {k: np.asarray(v) for k, v in state_dict.items()}
  known = {key for key, _ in leaves.values()} | optional
  missing = sorted(key for key, _ in leaves.values() if key not in arrays)
  unexpected = sorted(k for k in arrays if k not in known)
  bad = [
    f"{key} {arrays[key].shape} != {shape}"
    for key, shape in leaves.values()
    if key in arrays and arrays[key].shape != shape
  ]
  bad += [
    f"{key} (not the expected {'x'.join(map(str, mask.shape))} centre-square mask)"
    for key, mask in masks.items()
    if key in arrays and (arrays[key].shape != mask.shape or not np.array_equal(arrays[key], mask))
  ]
  if missing or unexpected or bad:
    found = [
      _listing(label, items)
      for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape or value", sorted(bad)))
      if items
    ]
    raise UserError(
      f"state_dict does not fit {variant} (latent_dim={latent_dim}, channels={channels}, "
      f"temporal={model.temporal}): {'; '.join(found)}"
    )
  out = {}
  for path, (key, _) in leaves.items():
    value = arrays[key].astype(np.float32)
    if path[-1].endswith("kernel"):
      # (out, in, *spatial) -> (*spatial, in, out)
      value = np.transpose(value, (*range(2, value.ndim), 1, 0))
    if path[-1] == "masked_kernel":
      # The reference masks in forward; store the masked values so masked taps are
      # zero in the params too, as they are after a Flax init.
      value = value * masks[f"{_torch_module(path[1:-1])}.filter_mask"][..., None, None]
    out[path] = np.ascontiguousarray(value)
  return traverse_util.unflatten_dict(out)


def _to_numpy(path: str, key: str, value) -> np.ndarray:
  import torch  # pylint: disable=g-import-not-at-top

  if not isinstance(value, torch.Tensor):
    raise UserError(f"{path}: state_dict entry {key!r} is a {type(value).__name__}, expected a tensor")
  value = value.detach().cpu()
  if value.is_floating_point() and value.dtype not in (torch.float32, torch.float64):
    value = value.float()  # numpy has no bfloat16
  return value.numpy()


def load_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a .pt state_dict with torch.load(weights_only=True): pickled code is refused, never run."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("reading a PyTorch checkpoint needs torch: pip install 'maskedskip_jax[torch]'") from None
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such checkpoint file")
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    # weights_only refuses any pickle that names code (a class, a function) to run.
    # Keep torch's diagnosis, not its advice to retry with weights_only=False.
    text = re.sub(r"\x1b\[\d+m", "", str(e))
    # Torch words it "Unsupported global: GLOBAL x" or, for a blocked module,
    # "unsupported GLOBAL x whose module y is blocked".
    if m := re.search(r"unsupported global:? (?:GLOBAL )?(\S+)", text, re.IGNORECASE):
      raise UserError(
        f"{path}: refused: the checkpoint references code ({m[1]}); only plain tensor "
        "state_dicts are read, and code in a checkpoint is never run"
      ) from None
    m = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    reason = m[1].strip() if m else " ".join(text.split())[:200]
    reason = re.split(r"[^.]*weights_only", reason)[0].strip() or type(e).__name__
    raise UserError(f"{path}: refused: not a plain tensor state_dict ({type(e).__name__}: {reason})") from None
  if isinstance(obj, dict):
    for wrapper in _WRAPPER_KEYS:
      if isinstance(obj.get(wrapper), dict):
        obj = obj[wrapper]
        break
  if not isinstance(obj, dict) or not obj:
    raise UserError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
  for prefix in _KEY_PREFIXES:
    if all(isinstance(k, str) and k.startswith(prefix) for k in obj):
      obj = {k[len(prefix) :]: v for k, v in obj.items()}
  return {str(k): _to_numpy(path, str(k), v) for k, v in obj.items()}


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def convert_checkpoint(
  checkpoint: str,
  out_dir: str,
  variant: str,
  latent_dim: int = 512,
  channels: int = 3,
  temporal: int | None = None,
  image_size: tuple[int, int] | None = None,
  export_batch: int = 0,
) -> str:
  """Reads `checkpoint`, converts it and writes a model bundle to `out_dir`."""
  temporal = models.default_temporal(variant) if temporal is None else temporal
  variables = convert_state_dict(load_torch_state_dict(checkpoint), variant, latent_dim, channels, temporal)
  config = dict(variant=variant, latent_dim=latent_dim, channels=channels, temporal=temporal)
  if image_size:
    config["image_size"] = list(image_size)
  metadata = dict(
    source="pytorch_reference", checkpoint=os.path.basename(checkpoint), checkpoint_sha256=_sha256(checkpoint)
  )
  example_shape = None
  if export_batch:
    if not image_size:
      raise UserError("--export-batch needs --image-size (the exported function has a fixed input shape)")
    example_shape = (export_batch, temporal, *image_size, channels)
  return bundle.save(out_dir, variables, config, metadata, example_shape=example_shape)
