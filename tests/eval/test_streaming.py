"""Streaming inference computes exactly what the plain model computes, clip by clip."""

import jax
from model_helpers import STREAM_LENGTHS
from model_helpers import centre_clips
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import streaming
from maskedskip_jax.nn import models
from maskedskip_jax.nn import scoring

SIZE = (32, 32)


def plain_recon(model, variables, videos):
  clips = centre_clips(videos, model.temporal)
  return clips, np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, clips))


@pytest.fixture(scope="module")
def grey_unet():
  """maskedskip_unet, T=3, its test videos and the plain model's reconstructions, shared by several tests."""
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  variables = random_variables(model)
  rng = np.random.default_rng(1)
  videos = [rng.integers(0, 256, (n, *SIZE, 1), dtype=np.uint8) for n in STREAM_LENGTHS]
  return model, variables, videos, *plain_recon(model, variables, videos)


@pytest.mark.parametrize(
  "variant,temporal,channels,batch",
  [
    ("maskedskip_unet", 3, 1, 3),
    ("unet", 1, 1, 4),
    ("autoencoder", 1, 1, 5),
    ("one_mask", 3, 3, 2),
    ("maskedskip_unet", 5, 1, 4),  # h = 2, and 4 frames per step is not a multiple of T
  ],
)
def test_streaming_matches_plain_apply(variant, temporal, channels, batch, grey_unet):
  if (variant, temporal, channels) == ("maskedskip_unet", 3, 1):
    model, variables, videos, clips, want = grey_unet
  else:
    model = models.build(variant, latent_dim=8, channels=channels, temporal=temporal)
    variables = random_variables(model)
    rng = np.random.default_rng(1)
    videos = [rng.integers(0, 256, (n, *SIZE, channels), dtype=np.uint8) for n in STREAM_LENGTHS]
    clips, want = plain_recon(model, variables, videos)
  scorer = streaming.StreamingScorer(model, variables, SIZE, batch_size=batch, with_recon=True, map_size=SIZE)
  # Frames arrive one at a time from iterators, as from a decoder.
  out = list(scorer.stream(iter(v) for v in videos))

  assert [(o.video, o.frame) for o in out] == [(v, k) for v, n in enumerate(STREAM_LENGTHS) for k in range(n)]
  np.testing.assert_allclose(np.stack([o.recon for o in out]), want, atol=1e-5, rtol=0)
  maps = scoring.score_maps(clips[:, (temporal - 1) // 2], want)
  np.testing.assert_allclose(np.stack([o.score_map for o in out]), maps, atol=1e-5, rtol=0)
  np.testing.assert_allclose([o.score for o in out], scoring.frame_scores(maps), atol=1e-5, rtol=0)


def test_streaming_runs_the_model_s_own_skips_with_ssmctb_blocks_and_mask_head():
  # 3-D blocks see the T-frame window of cached features, the decoder block only the centre frame.
  model = models.build(
    "maskedskip_unet", latent_dim=8, channels=1, mask_head=True, ssmctb={"placement": "all_skips", "dims": 3}
  )
  variables = random_variables(model)
  rng = np.random.default_rng(2)
  videos = [rng.integers(0, 256, (n, *SIZE, 1), dtype=np.uint8) for n in (4, 2)]
  clips, want = plain_recon(model, variables, videos)
  out = list(streaming.StreamingScorer(model, variables, SIZE, batch_size=3, with_recon=True).stream(videos))
  np.testing.assert_allclose(np.stack([o.recon for o in out]), want, atol=1e-5, rtol=0)
  assert all(o.mask_score is not None for o in out)


def test_reduced_maps_without_recon(grey_unet):
  model, variables, videos, clips, want = grey_unet
  scorer = streaming.StreamingScorer(model, variables, SIZE, batch_size=4, map_size=(8, 8))
  out = list(scorer.stream(videos))
  assert all(o.recon is None for o in out)
  full = np.asarray(scoring.score_maps(clips[:, 1], want))
  blocks = full.reshape(len(full), 8, 4, 8, 4).mean(axis=(2, 4))  # each small pixel = mean of the 4x4 it covers
  np.testing.assert_allclose(np.stack([o.score_map for o in out]), blocks, atol=1e-5, rtol=0)
  np.testing.assert_allclose([o.score for o in out], scoring.frame_scores(full), atol=1e-5, rtol=0)


def test_encoder_levels_and_errors(grey_unet):
  model, variables = grey_unet[:2]
  frames = jax.ShapeDtypeStruct((5, *SIZE, 1), np.float32)
  feats = jax.eval_shape(lambda v, f: streaming.encode(model, v, f), variables, frames)
  assert [f.shape for f in feats] == [(5, 16, 16, 1), (5, 8, 8, 2), (5, 4, 4, 4), (5, 2, 2, 8)]
  with pytest.raises(UserError, match="multiples of 16"):
    streaming.StreamingScorer(model, variables, (30, 32))
  with pytest.raises(UserError, match="batch_size"):
    streaming.StreamingScorer(model, variables, SIZE, batch_size=0)
  scorer = streaming.StreamingScorer(model, variables, SIZE, batch_size=2)
  with pytest.raises(UserError, match="frame 0: expected uint8"):
    list(scorer.stream([np.zeros((3, *SIZE, 3), np.uint8)]))
