"""The benchmarks' side paths compute the same maths: PyTorch's centre-only skips and the fused 3/5/7 block."""

from benchmark_scripts import uniform as _uniform
import jax
import jax.numpy as jnp
import numpy as np
import pytest


def test_torch_centre_only_skips_equal_full_3d():
  torch = pytest.importorskip("torch")
  import torch_reference  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  full = torch_reference.build("maskedskip_unet", 16, 3, 3, "full3d").eval()
  centre = torch_reference.build("maskedskip_unet", 16, 3, 3, "centre").eval()
  centre.load_state_dict(full.state_dict())
  x = torch.rand(2, 3, 3, 32, 32)
  with torch.no_grad():
    a, b = full(x), centre(x)
  assert float((a - b).abs().max()) < 1e-5
  conv = full.mconv1
  feat = torch.rand(2, conv.conv.in_channels, 3, 20, 20)
  with torch.no_grad():
    want = conv(feat)[:, :, 1]
    got = torch_reference.centre_only_skip(conv, feat)
  assert float((want - got).abs().max()) < 1e-5


def test_fused_branches_block_equals_plain_block():
  import fused_branches  # pylint: disable=g-import-not-at-top

  from maskedskip_jax.nn import layers  # pylint: disable=g-import-not-at-top

  x = _uniform(0, (2, 8, 8, 5))
  # The masked (ed_masks) form exercises the branch masks too; decode differs only after the convs.
  plain = layers.ConvBlock(4, ed_mask=True)
  fused = fused_branches.FusedConvBlock(4, ed_mask=True)
  variables = plain.init(jax.random.key(1, impl="rbg"), x, train=False)
  # Same parameter tree, so checkpoints and the optimiser's masks carry over unchanged.
  fused_vars = fused.init(jax.random.key(1, impl="rbg"), x, train=False)
  assert jax.tree.structure(variables) == jax.tree.structure(fused_vars)

  def loss_and_grads(module):
    # Train-mode BatchNorm: the fused block must also give the same batch statistics and gradients.
    def loss(v):
      y, upd = module.apply(v, x, train=True, mutable=["batch_stats"])
      return jnp.sum(y**2), (y, upd)

    return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables)

  (_, (y_plain, stats_plain)), g_plain = loss_and_grads(plain)
  (_, (y_fused, stats_fused)), g_fused = loss_and_grads(fused)
  np.testing.assert_allclose(np.asarray(y_fused), np.asarray(y_plain), atol=1e-5, rtol=1e-5)
  for want, got in zip(jax.tree.leaves((stats_plain, g_plain)), jax.tree.leaves((stats_fused, g_fused))):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4, rtol=1e-4)
