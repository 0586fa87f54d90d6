"""Broken inputs for the bad-input matrix, each built small in a folder it is given.

Frames come from tests/fake_layouts.py (tiny flat images in the real layouts);
the damage is the kind a user meets: a file cut short by an interrupted copy, a
byte flipped on a bad disk, a label file for another cut of the video, a pickle
where weights were expected.
"""

import os
import pickle
import shutil

import cv2
import fake_layouts
import numpy as np

# Frames per video: more than T, and enough for a .avi to be worth truncating.
FRAMES = 8
VIDEO_FRAMES = 30


class Payload:
  """Unpickling this would create the folder `marker`: proof that a pickle ran code."""

  def __init__(self, marker: str):
    self.marker = marker

  def __reduce__(self):
    return os.mkdir, (self.marker,)


def generic(root: str, **kw) -> str:
  """A sound generic-layout dataset: one train and one test video of FRAMES frames."""
  kw.setdefault("masks", False)
  return fake_layouts.make_generic(root, train=(("01", FRAMES),), test=(("01", FRAMES),), **kw)


def empty_video_folder(root: str) -> tuple[str, str]:
  generic(root)
  folder = os.path.join(root, "train", "02")
  os.makedirs(folder)
  return root, folder


def corrupt_tiff(root: str) -> tuple[str, str]:
  """UCSD Ped2 whose Train001 has garbage in frame 4 of 8 (a TIFF header, then noise)."""
  base = fake_layouts.make_ucsd(root, train=(FRAMES,), test=(FRAMES,), gt_lines=("[2:4]",), mask_videos=())
  bad = os.path.join(base, "Train", "Train001", "004.tif")
  noise = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
  with open(bad, "wb") as f:
    f.write(b"II*\x00" + noise)
  return root, bad


def _cut(path: str, keep: float = 0.5) -> str:
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[: int(len(data) * keep)])
  return path


def truncated_jpeg(root: str) -> tuple[str, str]:
  """Frame 4 of 8 cut in half, as an interrupted copy leaves it."""
  generic(root)
  return root, _cut(os.path.join(root, "train", "01", "003.jpg"))


def damaged_jpeg_header(root: str) -> tuple[str, str]:
  """Frame 4 of 8 with its second Huffman table overwritten: libjpeg only warns."""
  generic(root)
  path = os.path.join(root, "train", "01", "003.jpg")
  with open(path, "rb") as f:
    data = bytearray(f.read())
  second_dht = data.index(b"\xff\xc4", data.index(b"\xff\xc4") + 2)
  data[second_dht : second_dht + 8] = bytes(8)
  with open(path, "wb") as f:
    f.write(bytes(data))
  return root, path


def _write_mp4(path: str, count: int, size=(32, 32)) -> str:
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10, size[::-1])
  assert writer.isOpened(), path
  for k in range(count):
    frame = np.full((*size, 3), 40 + 6 * k, np.uint8)
    frame[4:12, k % size[1] : k % size[1] + 6] = 250
    writer.write(frame)
  writer.release()
  return path


def truncated_container(root: str, ext: str) -> tuple[str, str]:
  """A generic dataset whose training video is a .avi/.mp4 of VIDEO_FRAMES frames cut in half."""
  generic(root)
  shutil.rmtree(os.path.join(root, "train", "01"))
  path = os.path.join(root, "train", "01" + ext)
  if ext == ".avi":
    fake_layouts.write_avi(path, VIDEO_FRAMES)
  else:
    _write_mp4(path, VIDEO_FRAMES)
  return root, _cut(path)


def short_labels(root: str) -> tuple[str, str]:
  """Test video 01 has FRAMES frames but its .txt holds FRAMES - 3 labels."""
  generic(root, labels={"01": [0] * (FRAMES - 5) + [1, 1]})
  return root, os.path.join(root, "test", "01.txt")


def m_range_past_end(root: str) -> tuple[str, str]:
  """UCSD Ped2 whose .m marks frames 3..40 of an 8-frame test video."""
  base = fake_layouts.make_ucsd(root, train=(FRAMES,), test=(FRAMES,), gt_lines=("[3:40]",), mask_videos=())
  return root, os.path.join(base, "Test", "UCSDped2.m")


def short_video(path: str, frames: int = 2) -> str:
  return _write_mp4(path, frames)


def not_a_video(path: str) -> str:
  with open(path, "w") as f:
    f.write("meeting notes, not a video\n" * 40)
  return path


def bundle(out_dir: str, variant: str = "maskedskip_unet") -> str:
  """A valid bundle (latent 8, grey, 32x32) with small random weights; no export, so no compile."""
  import jax  # pylint: disable=g-import-not-at-top

  from maskedskip_jax.deploy import bundle as bundle_lib  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top

  model = models.build(variant, latent_dim=8, channels=1)
  x = np.zeros((1, model.temporal, 32, 32, 1), np.float32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: rng.uniform(0.5, 1.0, s.shape).astype(np.float32), shapes)
  return bundle_lib.save(
    out_dir, variables, {"variant": variant, "latent_dim": 8, "channels": 1, "image_size": (32, 32)}
  )


def _copy(bundle_dir: str, out_dir: str) -> str:
  shutil.copytree(bundle_dir, out_dir)
  return os.path.join(out_dir, "params.msgpack")


def tampered_bundle(bundle_dir: str, out_dir: str) -> tuple[str, str]:
  """One bit of params.msgpack flipped: same size, different content."""
  params = _copy(bundle_dir, out_dir)
  with open(params, "r+b") as f:
    f.seek(os.path.getsize(params) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x10]))
  return out_dir, params


def truncated_bundle(bundle_dir: str, out_dir: str) -> tuple[str, str]:
  params = _copy(bundle_dir, out_dir)
  return out_dir, _cut(params, 0.7)


def pickled_bundle(bundle_dir: str, out_dir: str, marker: str) -> tuple[str, str]:
  """params.msgpack replaced by a pickle that runs code, the manifest re-hashed to match.

  Only the parser stands between this file and execution.
  """
  import hashlib  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top

  params = _copy(bundle_dir, out_dir)
  data = pickle.dumps({"params": Payload(marker)})
  with open(params, "wb") as f:
    f.write(data)
  manifest_path = os.path.join(out_dir, "manifest.json")
  with open(manifest_path) as f:
    manifest = json.load(f)
  manifest["files"]["params.msgpack"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
  with open(manifest_path, "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
  return out_dir, params


def pickled_npy(path: str, marker: str) -> str:
  """An .npy of dtype object: loading it with allow_pickle would run Payload."""
  np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
  return path


def torch_state_dict(path: str, variant: str = "maskedskip_unet", latent_dim: int = 8) -> tuple[str, str, str]:
  """A reference-style .pt missing one expected key and holding one unknown key; returns both names."""
  import torch  # pylint: disable=g-import-not-at-top

  from maskedskip_jax.deploy import convert_torch  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top

  leaves, masks, _ = convert_torch.torch_layout(models.build(variant, latent_dim=latent_dim, channels=1))
  state = {key: torch.zeros(shape) for key, shape in leaves.values()}
  state.update({key: torch.from_numpy(np.asarray(m, np.float32)) for key, m in masks.items()})
  missing = sorted(state)[len(state) // 2]
  del state[missing]
  state["decoder.conv_9.convs.0.weight"] = torch.zeros(3, 3)
  torch.save(state, path)
  return path, missing, "decoder.conv_9.convs.0.weight"


def torch_pickle_with_code(path: str, marker: str) -> str:
  """A .pt whose unpickling calls os.mkdir(marker), next to a plausible tensor."""
  import torch  # pylint: disable=g-import-not-at-top

  torch.save({"mconv4.conv.bias": torch.zeros(8), "extra": Payload(marker)}, path)
  return path
