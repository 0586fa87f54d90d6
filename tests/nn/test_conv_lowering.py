"""The CPU conv lowerings compute what XLA's conv computes: forward, input and weight gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskedskip_jax.nn import conv_lowering
from maskedskip_jax.nn import initialization
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import models


def _uniform(seed, shape):
  return jax.random.uniform(jax.random.key(seed, impl="rbg"), shape, jnp.float32, -1.0, 1.0)


def _grads(fn, x, kernel):
  def loss(x, kernel):
    y = fn(x, kernel)
    return jnp.sum(y * jnp.cos(y))  # a non-trivial output gradient

  return jax.jit(lambda x, k: (fn(x, k), jax.grad(loss, argnums=(0, 1))(x, k)))(x, kernel)


def _float64_weight_grad(x, dy, kh, kw):
  """dW[i,j,c,o] = sum_{n,h,w} xpad[n,h+i,w+j,c] dY[n,h,w,o], straight from the definition."""
  x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
  _, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  out = np.zeros((kh, kw, x.shape[-1], dy.shape[-1]))
  for i in range(kh):
    for j in range(kw):
      out[i, j] = np.einsum("nhwc,nhwo->co", xp[:, i : i + h, j : j + w], dy)
  return out


@pytest.mark.parametrize("kh,kw,h,w", [(17, 17, 12, 10), (11, 13, 9, 16), (3, 5, 6, 7)])
def test_fft_weight_grad_equals_the_definition(kh, kw, h, w):
  x, dy = _uniform(0, (3, h, w, 4)), _uniform(1, (3, h, w, 5))
  got = np.asarray(conv_lowering.weight_grad_fft(x, dy, kh, kw))
  want = _float64_weight_grad(x, dy, kh, kw)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())


def test_fft_path_keeps_forward_and_input_gradient_bit_identical():
  x, kernel = _uniform(0, (2, 20, 18, 9)), _uniform(1, (17, 17, 9, 4)) * 0.05
  assert conv_lowering.path(x.shape, kernel.shape, "cpu") == "fft_weight_grad"
  y_xla, (gx_xla, gk_xla) = _grads(lambda x, k: conv_lowering.conv2d_same(x, k, "xla"), x, kernel)
  y_fft, (gx_fft, gk_fft) = _grads(lambda x, k: conv_lowering.conv2d_same(x, k, "cpu"), x, kernel)
  np.testing.assert_array_equal(np.asarray(y_fft), np.asarray(y_xla))
  np.testing.assert_array_equal(np.asarray(gx_fft), np.asarray(gx_xla))
  scale = float(jnp.max(jnp.abs(gk_xla)))
  np.testing.assert_allclose(np.asarray(gk_fft), np.asarray(gk_xla), atol=1e-5 * scale)
  assert not np.array_equal(np.asarray(gk_fft), np.asarray(gk_xla))  # it really took the FFT route


def test_im2col_path_equals_xla_for_a_kernel_larger_than_the_map():
  x, kernel = _uniform(0, (2, 4, 6, 48)), _uniform(1, (7, 7, 48, 48)) * 0.02
  assert conv_lowering.path(x.shape, kernel.shape, "cpu") == "im2col"
  y_xla, g_xla = _grads(lambda x, k: conv_lowering.conv2d_same(x, k, "xla"), x, kernel)
  y_col, g_col = _grads(lambda x, k: conv_lowering.conv2d_same(x, k, "cpu"), x, kernel)
  np.testing.assert_allclose(np.asarray(y_col), np.asarray(y_xla), atol=1e-5, rtol=1e-5)
  for want, got in zip(g_xla, g_col):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5)


def test_path_choice():
  big_map = (1, 32, 32, 8)
  assert conv_lowering.path(big_map, (17, 17, 8, 8), "xla") == "xla"
  assert conv_lowering.path(big_map, (11, 11, 8, 8), "cpu") == "fft_weight_grad"
  assert conv_lowering.path(big_map, (7, 7, 8, 8), "cpu") == "xla"  # FFT loses below 11x11
  assert conv_lowering.path((1, 4, 4, 64), (5, 5, 64, 128), "cpu") == "im2col"
  assert conv_lowering.path((1, 4, 4, 64), (3, 3, 64, 128), "cpu") == "xla"  # kernel fits the map
  assert conv_lowering.path((1, 4, 4, 8), (5, 5, 8, 16), "cpu") == "xla"  # too small to pay for its compile
  assert conv_lowering.path((1, 2, 2, 64), (5, 5, 64, 128), "cpu") == "xla"
  assert conv_lowering.path((1, 16, 16, 8), (17, 17, 8, 8), "cpu") == "fft_weight_grad"  # too many taps to gather
  # 'auto' follows the backend the test runs on; 'xla' on accelerators.
  want = "fft_weight_grad" if jax.default_backend() == "cpu" else "xla"
  assert conv_lowering.path(big_map, (17, 17, 8, 8), "auto") == want
  with pytest.raises(ValueError, match="conv lowering"):
    conv_lowering.resolve("fast")


def test_masked_skip_conv_keeps_zero_gradient_on_masked_taps_through_fft():
  mask = layers.centre_square_mask(17, 7, 3)
  conv = layers.Conv(4, (3, 17, 17), mask, centre_frame=True, lowering="cpu")
  x = _uniform(0, (2, 3, 12, 10, 3))
  variables = conv.init(jax.random.key(1, impl="rbg"), x)
  grad = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(conv.apply(v, x)))))(variables)
  g = np.asarray(grad["params"]["masked_kernel"])
  hole = np.broadcast_to(mask == 0, g.shape)
  assert hole.sum() > 0 and not np.any(g[hole]) and np.any(g[~hole])


def test_model_trains_the_same_under_both_lowerings():
  """Whole network at a size where every CPU path fires (17x17 skips, 7x7 decoder convs on a 4x4 map)."""
  kw = dict(latent_dim=32, channels=1)  # the smallest latent whose decoder convs reach im2col's 2048 channel pairs
  fast, plain = models.build(**kw, conv_lowering="cpu"), models.build(**kw, conv_lowering="xla")
  x = jax.random.uniform(jax.random.key(0, impl="rbg"), (2, 3, 64, 64, 1))
  seen = []
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(conv_lowering, "path", lambda *a, _f=conv_lowering.path: seen.append(_f(*a)) or seen[-1])
    jax.eval_shape(lambda: fast.init(jax.random.key(0), x))
  assert {"fft_weight_grad", "im2col"} <= set(seen)  # both CPU paths are exercised by this comparison
  variables = initialization.init_variables(plain, 0, x.shape)

  def loss_and_grad(model):
    def loss(params):
      y, _ = model.apply(
        {"params": params, "batch_stats": variables["batch_stats"]}, x, train=True, mutable=["batch_stats"]
      )
      return jnp.mean((y - x[:, 1]) ** 2), y

    return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])

  (loss_f, y_f), g_f = loss_and_grad(fast)
  (loss_p, y_p), g_p = loss_and_grad(plain)
  np.testing.assert_allclose(np.asarray(y_f), np.asarray(y_p), atol=1e-5)
  np.testing.assert_allclose(float(loss_f), float(loss_p), rtol=1e-5)
  for (path, want), got in zip(jax.tree_util.tree_leaves_with_path(g_p), jax.tree_util.tree_leaves(g_f)):
    # Biases feeding a BatchNorm have a true gradient of 0 (float noise ~1e-10): the floor covers them.
    scale = float(np.abs(np.asarray(want)).max())
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4 * scale + 1e-8, err_msg=str(path))


def test_unknown_lowering_is_a_user_error():
  from maskedskip_jax.errors import UserError  # pylint: disable=g-import-not-at-top

  with pytest.raises(UserError, match="model.conv_lowering"):
    models.build(conv_lowering="fast")
