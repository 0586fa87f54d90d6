"""AED-MAE: the self-distilled masked auto-encoder of Ristea et al. (CVPR 2024), Sec. 3 and 4.1.

Input (B, H, W, C_in) with H and W multiples of `patch`. C_in is the target frame's c channels stacked with those
of its neighbours: the paper reconstructs "the video frame" and says nothing of its input, but the authors' code
(`input_3d`) feeds [x_{t-3}, x_t, x_{t+3}] concatenated on the channel axis (C_in = 3c, the target in the middle)
and reconstructs x_t alone. The model accepts any C_in; which frames are stacked, in what order, is the data's
job. Outputs have c + 1 channels: the target frame and its anomaly map (Sec. 3, synthetic anomalies).

The network: non-overlapping patch x patch tokens from a convolutional embedding, no positional embedding (the
convolutional Q/K/V projections carry position, as in CvT and the authors' code); in training a random
`mask_ratio` of the tokens is dropped per frame (rng stream 'masking'); a [CLS] token joins the kept tokens in an
encoder of `depth` CvT blocks of width `embed_dim`, whose final [CLS] feeds the classification head (a logit;
Eq. 5 trains its sigmoid). A linear layer maps the encoder to `decoder_dim`, mask tokens fill the dropped places,
and the decoder's first `branch` blocks are shared: the teacher adds the remaining `decoder_depth - branch`
blocks, the student its own `student_depth` blocks, each with a LayerNorm and a linear layer to patch x patch x
(c + 1) values per token. Outputs are linear, in the targets' units, as in MAE.

Inference (`train=False`) drops no tokens unless asked: `mask=True` drops a random `mask_ratio` of them (a 'masking'
key), as the authors' evaluation does, and `keep` (B, K) names the kept tokens' raster positions outright, so a
scorer can mask every token exactly once over a few passes (`eval/aed_mae_scorer.py`). Stage 2
(`freeze_backbone=True`) runs the shared backbone and the teacher's head on BatchNorm's running averages without
dropout, and stops gradients at the branch point; only the student's blocks train.
`backbone_labels` names the three parameter groups for `optax.multi_transform` (`stage2_transform`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import cvt

LABELS = ("backbone", "teacher_head", "student")
TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


class AedMae(nn.Module):
  """The teacher-student masked AE; defaults are the paper's (Sec. 4.1) and, where it is silent, the authors'."""

  channels: int = 3  # c: channels of the target frame; outputs have c + 1
  patch: int = 16  # d: 16 on Avenue, 8 on ShanghaiTech and UBnormal, 4 on Ped2
  mask_ratio: float = 0.5  # the authors' code; the paper does not say
  embed_dim: int = 256
  depth: int = 3
  decoder_dim: int = 128
  decoder_depth: int = 3  # the teacher's decoder blocks, shared ones included
  branch: int = 1  # teacher decoder blocks the student shares
  student_depth: int = 1
  heads: int = 4
  mlp_ratio: float = 2.0  # the authors' code
  kernel: int = 3  # depthwise Q/K/V kernel (CvT)
  dropout: float = 0.1  # MLP dropout in the authors' code
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  def _check(self, shape) -> None:
    if len(shape) != 4:
      raise UserError(f"aed_mae input: expected (batch, H, W, channels), got shape {tuple(shape)}")
    _, h, w, _ = shape
    if h < self.patch or w < self.patch or h % self.patch or w % self.patch:
      raise UserError(f"aed_mae input: H and W must be multiples of the patch size {self.patch}, got {h}x{w}")
    if not 0.0 <= self.mask_ratio < 1.0:
      raise UserError(f"aed_mae.mask_ratio: must be in [0, 1), got {self.mask_ratio}")
    if not 1 <= self.branch < self.decoder_depth or self.student_depth < 1:
      raise UserError(
        f"aed_mae: need 1 <= branch < decoder_depth and student_depth >= 1, got branch "
        f"{self.branch}, decoder_depth {self.decoder_depth}, student_depth {self.student_depth}"
      )
    if self.embed_dim % self.heads or self.decoder_dim % self.heads:
      raise UserError(f"aed_mae: widths {self.embed_dim} and {self.decoder_dim} must divide by {self.heads} heads")

  def _random_keep(self, b: int, n: int) -> tuple[jax.Array, jax.Array]:
    """Raster positions (B, K) of the tokens each frame keeps, ascending, and the (B, n) dropped-token mask."""
    keep = n - int(n * self.mask_ratio)
    noise = jax.random.uniform(self.make_rng("masking"), (b, n))
    index = jnp.sort(jnp.argsort(noise, axis=1)[:, :keep], axis=1).astype(jnp.int32)
    dropped = jnp.ones((b, n), bool).at[jnp.arange(b)[:, None], index].set(False)
    return index, dropped

  def _block(self, name: str, dim: int) -> cvt.CvtBlock:
    return cvt.CvtBlock(
      dim=dim,
      heads=self.heads,
      mlp_ratio=self.mlp_ratio,
      kernel=self.kernel,
      dropout=self.dropout,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )

  def _head(self, prefix: str, z: jax.Array, hw: tuple[int, int]) -> jax.Array:
    """LayerNorm, linear to patch x patch x (c + 1) per token, tokens back to pixels: (B, H, W, c + 1) float32."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    p, out = self.patch, self.channels + 1
    z = nn.LayerNorm(epsilon=cvt.LN_EPS, name=f"{prefix}_norm", **kw)(z)
    z = nn.Dense(p * p * out, name=f"{prefix}_pred", **kw)(z[:, 1:])
    (h, w), b = hw, z.shape[0]
    z = z.reshape(b, h, w, p, p, out).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * p, w * p, out)
    return z.astype(jnp.float32)

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    *,
    train: bool = False,
    freeze_backbone: bool = False,
    mask: bool | None = None,
    keep: jax.Array | None = None,
  ) -> dict:
    """Returns {'teacher', 'student': (B, H, W, c + 1), 'logit': (B,), 'mask': (B, h, w) True where dropped}.

    `train` selects BatchNorm's batch statistics and dropout; `mask` (default: `train`) drops random tokens;
    `keep` (B, K) int keeps exactly the tokens at those raster positions instead: distinct, in [0, n), in any order
    (tokens are placed by position; not checked, as they are traced values); not with `mask=True`.
    """
    self._check(x.shape)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    b, hh, ww, _ = x.shape
    hw = (hh // self.patch, ww // self.patch)
    n = hw[0] * hw[1]
    shared_train = train and not freeze_backbone
    init = nn.initializers.normal(0.02)

    tokens = cvt.ConvEmbed(self.embed_dim, self.patch, name="embed", **kw)(x.astype(self.dtype))
    tokens = tokens.reshape(b, n, self.embed_dim)
    drop = train if mask is None else mask
    if keep is not None:
      if mask:
        raise UserError("aed_mae: pass either mask=True (random tokens) or keep (given tokens), not both")
      if not hasattr(keep, "ndim") or keep.ndim != 2 or keep.shape[0] != b or not 0 < keep.shape[1] <= n:
        got = getattr(keep, "shape", type(keep).__name__)
        raise UserError(f"aed_mae keep: expected a (batch, K) array of token positions, 0 < K <= {n}, got {got}")
      index = keep.astype(jnp.int32)
      dropped = jnp.ones((b, n), bool).at[jnp.arange(b)[:, None], index].set(False)
      tokens = jnp.take_along_axis(tokens, index[..., None], axis=1)
    elif drop:
      index, dropped = self._random_keep(b, n)
      tokens = jnp.take_along_axis(tokens, index[..., None], axis=1)
    else:
      index, dropped = None, jnp.zeros((b, n), bool)
    cls = self.param("cls_token", init, (1, 1, self.embed_dim), self.param_dtype).astype(self.dtype)
    y = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.embed_dim)), tokens], axis=1)
    for i in range(self.depth):
      y = self._block(f"encoder_{i}", self.embed_dim)(y, hw, index, shared_train)
    y = nn.LayerNorm(epsilon=cvt.LN_EPS, name="encoder_norm", **kw)(y)
    logit = nn.Dense(1, name="cls_head", **kw)(y[:, 0])[:, 0].astype(jnp.float32)

    z = nn.Dense(self.decoder_dim, name="decoder_embed", **kw)(y)
    mask_token = self.param("mask_token", init, (1, 1, self.decoder_dim), self.param_dtype).astype(self.dtype)
    full = z[:, 1:]
    if index is not None:
      full = jnp.broadcast_to(mask_token, (b, n, self.decoder_dim)).at[jnp.arange(b)[:, None], index].set(full)
    z = jnp.concatenate([z[:, :1], full], axis=1)
    for i in range(self.branch):
      z = self._block(f"decoder_{i}", self.decoder_dim)(z, hw, None, shared_train)
    if freeze_backbone:
      z = jax.lax.stop_gradient(z)

    t = z
    for i in range(self.branch, self.decoder_depth):
      t = self._block(f"teacher_{i}", self.decoder_dim)(t, hw, None, shared_train)
    s = z
    for i in range(self.student_depth):
      s = self._block(f"student_{i}", self.decoder_dim)(s, hw, None, train)
    return {
      "teacher": self._head("teacher", t, hw),
      "student": self._head("student", s, hw),
      "logit": logit,
      "mask": dropped.reshape(b, *hw),
    }


def label_of(name: str) -> str:
  """The parameter group of a top-level module or parameter name of `AedMae` (one of `LABELS`).

  The backbone is everything both decoders' outputs depend on: embedding, [CLS] and mask tokens, encoder, the
  decoder embedding and the shared decoder blocks, plus the classification head, which sits on the shared encoder
  (the paper's theta_E) and is trained with it in stage 1.
  """
  if name.startswith("student_"):
    return "student"
  if name.startswith("teacher_"):
    return "teacher_head"
  return "backbone"


def backbone_labels(params) -> dict:
  """A tree like `params` with each leaf labelled 'backbone', 'teacher_head' or 'student' (see `label_of`)."""
  return jax.tree_util.tree_map_with_path(lambda path, _: label_of(str(path[0].key)), params)


def stage2_transform(student_tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """Stage 2: `student_tx` on the student, exact zeros (no decay, no momentum) for the backbone and teacher head."""
  frozen = optax.set_to_zero()
  return optax.multi_transform({"student": student_tx, "backbone": frozen, "teacher_head": frozen}, backbone_labels)


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def variable_shapes(model: AedMae, input_shape) -> dict:
  """Shapes and dtypes of `model`'s variables for a (B, H, W, C_in) input, without compiling anything."""
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  return jax.eval_shape(lambda v: model.init(jax.random.key(0), v), x)


def _truncated_normal(rng: np.random.Generator, shape) -> np.ndarray:
  z = rng.standard_normal(shape)
  while (out := np.abs(z) > 2.0).any():
    z[out] = rng.standard_normal(int(out.sum()))
  return z


def init_variables(model: AedMae, seed: int, input_shape) -> dict:
  """Variables drawn on the host with numpy, with `model.init`'s distributions, deterministic in `seed`.

  `model.init` compiles one random draw per parameter, which takes many seconds on CPU for a network this small;
  shapes come from `jax.eval_shape` instead. Flax's defaults: kernels LeCun-normal (truncated at two standard
  deviations, rescaled to variance 1 / fan_in), biases 0, LayerNorm and BatchNorm scales 1, running means 0 and
  variances 1, and N(0, 0.02^2) for the [CLS] and mask tokens.
  """
  shapes = variable_shapes(model, input_shape)
  rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4145]))  # 'AE'

  def draw(path, leaf):
    name = str(path[-1].key)
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      value = _truncated_normal(rng, leaf.shape) / (np.sqrt(fan_in) * TRUNCATED_STD)
    elif name in ("cls_token", "mask_token"):
      value = rng.normal(0.0, 0.02, leaf.shape)
    elif name in ("scale", "var"):
      value = np.ones(leaf.shape)
    else:
      value = np.zeros(leaf.shape)
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def gflops_per_frame(model: AedMae, frame_shape) -> float:
  """XLA's count of floating-point operations (a multiply-add is two) of one inference forward, in GFLOPs.

  `frame_shape` is (H, W, C_in). The whole inference pass is counted: embedding, encoder, classification head,
  teacher and student decoders, no masking. From the compiled program, so it is what actually runs.
  """
  shape = (1, *frame_shape)
  variables = variable_shapes(model, shape)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  compiled = jax.jit(lambda v, f: model.apply(v, f)).lower(variables, x).compile()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax: one dict per device program
    cost = cost[0]
  return float(cost["flops"]) / 1e9
