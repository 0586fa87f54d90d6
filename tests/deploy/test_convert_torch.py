"""Importing reference PyTorch state_dicts: outputs match a PyTorch twin; bad files are refused."""

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_twin  # pylint: disable=g-import-not-at-top

from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top
from maskedskip_jax.deploy import convert_torch
from maskedskip_jax.errors import UserError  # pylint: disable=g-import-not-at-top
from maskedskip_jax.nn import models

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (variant, latent_dim, channels, temporal, (H, W)): every variant once; the main one
# grey with T=5 at 64x64, one on non-square frames, to cover the other axes too.
CASES = [
  (v, 16, 3, models.default_temporal(v), (32, 48) if v == "unet" else (32, 32))
  for v in models.VARIANTS
  if v != "maskedskip_unet"
]
CASES.append(("maskedskip_unet", 32, 1, 5, (64, 64)))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
  # These convs are tiny: thread start-up and contention with XLA cost more than they save.
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


def trained_twin(variant, latent_dim=16, channels=3, temporal=3, hw=(32, 32), seed=0):
  """A twin with non-trivial BatchNorm affine params and running statistics, in eval mode."""
  torch.manual_seed(seed)
  twin = torch_twin.Twin(variant, latent_dim, channels, temporal)
  with torch.no_grad():
    for m in twin.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.3, 0.3)
        m.momentum = None  # cumulative average: running stats become the true statistics
    twin.train()
    for _ in range(2):
      twin(torch.rand(2, channels, temporal, *hw) * 0.8 + 0.1)
  return twin.eval()


def numpy_state_dict(twin):
  return {k: v.numpy() for k, v in twin.state_dict().items()}


def flax_output(variables, model, x_nchw):
  x = np.transpose(x_nchw, (0, 2, 3, 4, 1))  # (B, C, T, H, W) -> (B, T, H, W, C)
  return np.transpose(np.asarray(jax.jit(model.apply)(variables, x)), (0, 3, 1, 2))


@pytest.mark.parametrize("variant,latent_dim,channels,temporal,hw", CASES)
def test_imported_weights_reproduce_the_twin(variant, latent_dim, channels, temporal, hw):
  twin = trained_twin(variant, latent_dim, channels, temporal, hw)
  x = torch.rand(2, channels, temporal, *hw, generator=torch.Generator().manual_seed(1))
  with torch.no_grad():
    want = twin(x).numpy()
  # Running stats really moved, so the test exercises their import.
  bn = twin.encoder.conv_1.batch_norm_1
  assert not np.allclose(bn.running_var.numpy(), 1, atol=0.05)
  assert not np.allclose(bn.running_mean.numpy(), 0, atol=0.05)
  variables = convert_torch.convert_state_dict(numpy_state_dict(twin), variant, latent_dim, channels, temporal)
  model = models.build(variant, latent_dim=latent_dim, channels=channels, temporal=temporal)
  got = flax_output(variables, model, x.numpy())
  assert got.shape == want.shape
  assert want.std() > 1e-3  # not a constant image that any weights would give
  assert np.abs(got - want).max() < 1e-4


def test_masked_taps_are_zero_after_import():
  twin = trained_twin("ed_masks_skip_unet")
  raw = twin.mconv1.conv.weight.detach().numpy()  # (out, in, T, 17, 17); the twin masks in forward only
  assert np.abs(raw[:, :, 1, 5:12, 5:12]).min() > 0
  variables = convert_torch.convert_state_dict(numpy_state_dict(twin), "ed_masks_skip_unet", 16, 3, 3)
  kernel = variables["params"]["mconv1"]["masked_kernel"]  # (T, 17, 17, in, out)
  assert not kernel[1, 5:12, 5:12].any()
  assert np.abs(kernel[0, 5:12, 5:12]).min() > 0  # other time slices stay live
  conv = variables["params"]["encoder_2"]["convs_1"]["masked_kernel"]  # 5x5 with a 3x3 hole
  assert not conv[1:4, 1:4].any() and np.abs(conv[0]).min() > 0


def test_missing_unexpected_and_misshaped_keys_are_all_listed():
  sd = numpy_state_dict(torch_twin.Twin("maskedskip_unet", 16, 3, 3))
  del sd["mconv2.conv.bias"]
  sd["mconv9.conv.weight"] = np.zeros((1,), np.float32)
  sd["decoder.conv_1.conv_last.weight"] = np.zeros((8, 9, 1, 1), np.float32)
  sd["mconv3.filter_mask"] = np.ones((3, 7, 7), np.float32)  # right shape, no hole
  with pytest.raises(UserError) as err:
    convert_torch.convert_state_dict(sd, "maskedskip_unet", 16, 3, 3)
  msg = str(err.value)
  for needle in (
    "missing [mconv2.conv.bias]",
    "unexpected [mconv9.conv.weight]",
    "decoder.conv_1.conv_last.weight (8, 9, 1, 1) != (8, 24, 1, 1)",
    "mconv3.filter_mask",
  ):
    assert needle in msg
  assert "\n" not in msg


def test_wrong_variant_is_refused():
  sd = numpy_state_dict(torch_twin.Twin("maskedskip_unet", 16, 3, 3))
  with pytest.raises(UserError, match=r"missing \[conv1.bias, conv1.weight.*unexpected \[mconv1.conv.bias"):
    convert_torch.convert_state_dict(sd, "conv3d_skip_unet", 16, 3, 3)
  with pytest.raises(UserError, match="wrong shape"):
    convert_torch.convert_state_dict(sd, "maskedskip_unet", 32, 3, 3)


def test_load_accepts_wrapped_and_prefixed_state_dicts(tmp_path):
  sd = torch_twin.Twin("one_mask", 16, 1, 3).state_dict()
  plain = tmp_path / "plain.pt"
  torch.save(sd, plain)
  wrapped = tmp_path / "wrapped.pt"
  torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in sd.items()}}, wrapped)
  a = convert_torch.load_torch_state_dict(str(plain))
  b = convert_torch.load_torch_state_dict(str(wrapped))
  assert sorted(a) == sorted(sd) == sorted(b)
  for k in sd:
    np.testing.assert_array_equal(a[k], sd[k].numpy())
    np.testing.assert_array_equal(b[k], sd[k].numpy())


class _Payload:
  """Unpickling this would create the marker file: proof that code ran."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, "w"))


def test_pickle_with_code_is_refused_not_executed(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pt"
  torch.save({"mconv4.conv.bias": torch.zeros(2), "x": _Payload(str(marker))}, path)
  assert not marker.exists()
  with pytest.raises(UserError, match="evil.pt: refused: the checkpoint references code"):
    convert_torch.load_torch_state_dict(str(path))
  assert not marker.exists()


def test_cli_end_to_end_and_error_path(tmp_path):
  twin = trained_twin("two_mask")
  ckpt, out = tmp_path / "ref.pt", tmp_path / "bundle"
  torch.save(twin.state_dict(), ckpt)
  evil = tmp_path / "evil.pt"
  torch.save({"x": _Payload(str(tmp_path / "pwned"))}, evil)
  # One interpreter runs both CLIs (saves a second jax start) and checks torch stays optional.
  script = f"""
import sys
from maskedskip_jax import convert_torch as convert_torch_cli
from maskedskip_jax.deploy import bundle, convert_torch, reconstruct
assert 'torch' not in sys.modules, 'importing maskedskip_jax pulled in torch'
args = ['--variant', 'two_mask', '--latent-dim', '16', '--channels', '3', '--temporal', '3']
assert convert_torch_cli.main(['--checkpoint', {str(ckpt)!r}, '--out', {str(out)!r}, *args]) == 0
assert convert_torch_cli.main(['--checkpoint', {str(evil)!r}, '--out', {str(tmp_path / "b2")!r}, *args]) == 1
"""
  proc = subprocess.run(
    [sys.executable, "-c", script],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "PYTHONPATH": str(ROOT)},
  )
  assert proc.returncode == 0, proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "evil.pt: refused" in errors[0] and "Traceback" not in proc.stderr
  assert not (tmp_path / "pwned").exists() and not (tmp_path / "b2").exists()

  model, variables, config = bundle.load(str(out), expect_variant="two_mask")
  assert config["metadata"]["checkpoint"] == "ref.pt" and config["temporal"] == 3
  x = torch.rand(2, 3, 3, 32, 32)
  with torch.no_grad():
    want = twin(x).numpy()
  assert np.abs(flax_output(variables, model, x.numpy()) - want).max() < 1e-4
