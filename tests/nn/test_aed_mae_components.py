"""Table 2's switches: each of AED-MAE's components can be turned off, and off means what the paper's row means."""

import jax.numpy as jnp
import numpy as np

from maskedskip_jax.nn import aed_mae_losses as L

B, HW, P = 2, 8, 4  # 4 tokens of 4x4 per frame


def _outputs(logit=0.0):
  zeros = jnp.zeros((B, HW, HW, 2))
  return {"teacher": zeros, "student": zeros, "logit": jnp.full((B,), logit)}


def test_without_motion_the_weights_are_uniform():
  frame = jnp.ones((B, HW, HW, 1))
  previous = frame.at[:, :4, :4].set(0.0)  # all the motion in token 0
  anomaly = jnp.zeros((B, HW, HW))
  out = _outputs()
  out["teacher"] = out["teacher"].at[:, :4, :4, 0].set(1.0)  # token 0 is rebuilt exactly, the others miss by 1
  off = L.Components(motion=False, anomaly_maps=False, classifier=False)
  # Squared errors per token (0, 16, 16, 16); uniform weights 1/4: mean of w * e = 48 / 16.
  np.testing.assert_allclose(L.stage1_loss(out, frame, previous, anomaly, P, off)[0], 3.0, rtol=1e-6)
  # With motion all the weight sits on token 0, whose error is 0.
  weighted = L.stage1_loss(out, frame, previous, anomaly, P, L.Components(anomaly_maps=False, classifier=False))
  np.testing.assert_allclose(weighted[0], 0.0, atol=1e-6)


def test_anomaly_maps_add_a_target_channel_only_when_on():
  frame = jnp.ones((B, HW, HW, 1))
  anomaly = jnp.ones((B, HW, HW))
  uniform = dict(motion=False, classifier=False)
  with_maps = L.stage1_loss(_outputs(), frame, frame, anomaly, P, L.Components(**uniform))[0]
  without = L.stage1_loss(_outputs(), frame, frame, anomaly, P, L.Components(anomaly_maps=False, **uniform))[0]
  np.testing.assert_allclose([with_maps, without], [8.0, 4.0], rtol=1e-6)  # 32 vs 16 per token, weights 1/4
  teacher = jnp.zeros((1, HW, HW, 2)).at[..., 1].set(1.0)  # predicts "anomalous" everywhere
  o_on = L.pixel_scores(frame[:1], teacher, teacher, jnp.zeros(1), 1.0, 0.0, 0.0)
  o_off = L.pixel_scores(frame[:1], teacher, teacher, jnp.zeros(1), 1.0, 0.0, 0.0, anomaly_maps=False)
  np.testing.assert_allclose([o_on[0, 0, 0], o_off[0, 0, 0]], [2.0, 1.0])


def test_without_the_classifier_there_is_no_cross_entropy():
  frame = jnp.zeros((B, HW, HW, 1))
  anomaly = jnp.zeros((B, HW, HW)).at[0].set(1.0)
  total, parts = L.stage1_loss(_outputs(logit=3.0), frame, frame, anomaly, P, L.Components(classifier=False))
  assert float(parts["classification"]) == 0.0 and float(total) == float(parts["reconstruction"])
  total_on, parts_on = L.stage1_loss(_outputs(logit=3.0), frame, frame, anomaly, P)
  # BCE of logit 3 against labels (1, 0): mean of log(1 + e^-3) and log(1 + e^3).
  expected = (np.log1p(np.exp(-3.0)) + np.log1p(np.exp(3.0))) / 2
  np.testing.assert_allclose(parts_on["classification"], expected, rtol=1e-5)


def test_stage2_follows_the_same_switches():
  frame = jnp.ones((B, HW, HW, 1))
  out = {"teacher": jnp.ones((B, HW, HW, 2)), "student": jnp.zeros((B, HW, HW, 2)), "logit": jnp.zeros(B)}
  anomaly = jnp.zeros((B, HW, HW))
  full = L.stage2_loss(out, frame, frame, anomaly, P)[0]
  frame_only = L.stage2_loss(out, frame, frame, anomaly, P, L.Components(anomaly_maps=False))[0]
  np.testing.assert_allclose([full, frame_only], [8.0, 4.0], rtol=1e-6)
