r"""Train the PyTorch twin the way the published code does, then score it with the JAX evaluation.

  python3 benchmarks/torch_train.py --config=configs/ped2.py --config.data.name=generic \
      --config.data.root=../shared/data/ped2_dev --config.data.image_size='(64,64)' \
      --config.model.latent_dim=64 --config.train.batch_size=8 --config.train.num_steps=800 \
      --config.model.masked_kernels=frozen --workdir=runs/torch_ped2_frozen

Issue #16 item 4: the published training loop (train.py: torch.optim.Adam(lr) on NormLoss, train-mode
BatchNorm, 10 epochs of shuffled stride-1 T-frame windows) run on tests/torch_twin.py, so that the gap
between the JAX trainer and the published code can be measured with everything after training equal:
the weights are imported into a model bundle (maskedskip_jax.deploy.convert_torch) and scored by
maskedskip_jax.eval.evaluate.run, so DIR/eval/report.json is the report a JAX run writes.

Config keys mean what they mean for maskedskip_jax.main. Writes DIR/torch.pt (state_dict), DIR/bundle,
DIR/torch_train.json (losses, timings) and DIR/eval/.

Same as the JAX trainer: the FrameStore (resize, channel handling, uint8 quantisation), the clip plan
(clips.TrainPlan: stride-1 windows inside each video, a fresh permutation per epoch from (seed, epoch),
remainder dropped), /255 to [0, 1] as the Grain/tf.data backends do (bit-identical batches), Adam
defaults (eps 1e-8), the NormLoss (torch_reference.norm_loss: the JAX loss's 1e-12 under the root, where the
published torch.norm has none), PyTorch's conv init distribution (the published code's too).
Different on purpose or unavoidably: the parameters are PyTorch's draws for torch.manual_seed(seed),
not the JAX init's; BatchNorm is PyTorch's (running variance updated with the unbiased batch variance);
the masked 3-D skips compute all T frames (model.centre_only and conv_lowering do not apply); float32
only. The published DataLoader also keeps the last partial batch of an epoch; this plan drops it.
"""

import hashlib
import json
import math
import os
import sys
import time

from absl import app
import numpy as np

# Before torch loads: PyTorch's spinning OpenMP threads starve each other on a loaded shared CPU (measured
# at load ~4 on 2 cores: 6.5 s/step spinning vs 0.87 s/step passive). Set OMP_WAIT_POLICY to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [p for p in (ROOT, os.path.join(ROOT, "benchmarks")) if p not in sys.path]

import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch_twin  # pylint: disable=g-import-not-at-top,wrong-import-position  (on the path via torch_reference)

from data_pipeline import clips  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax import app as app_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax import validation  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.deploy import convert_torch  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.errors import UserError  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import inputs as train_data  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = None  # defined in __main__, after the keys are checked: config_flags applies overrides then
LOG_EVERY = 50
# Settings the published loop does not have; the twin cannot honour anything but their defaults.
_UNSUPPORTED = {
  "train.schedule": "constant",
  "train.grad_clip_norm": 0.0,
  "train.paste_prob": 0.0,
  "train.motion_weighting": "none",
  "model.ssmctb.placement": "none",
  "model.mask_head": False,
}


def check_config(config) -> None:
  validation.validate(config)
  flat = config_lib.flatten(config)
  odd = [f"{k}={flat[k]!r}" for k, default in _UNSUPPORTED.items() if flat.get(k, default) != default]
  if odd:
    raise UserError(f"the published training loop has no {', '.join(odd)}; leave these at their defaults")
  if config.model.variant not in torch_twin.VARIANTS:
    raise UserError(f"model.variant {config.model.variant!r}: the PyTorch twin has no such variant")
  if config.train.compute_dtype == "bfloat16":
    raise UserError("train.compute_dtype=bfloat16: this trainer computes in float32 only")


def _masked_weights(net: torch.nn.Module) -> list[torch.nn.Parameter]:
  return [m.conv.weight for m in net.modules() if isinstance(m, torch_twin.MaskedConv)]


def build_twin(config) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
  """The twin and Adam over what the published code trains (`frozen`: not the masked-conv weights)."""
  m = config.model
  torch.manual_seed(config.train.seed)
  net = torch_twin.Twin(m.variant, m.latent_dim, config.data.channels, m.temporal)
  masked = _masked_weights(net)
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch_twin.MaskedConv):
        # The published forward stores the masked weight; the JAX init zeroes the taps too.
        module.conv.weight.mul_(module.filter_mask)
  # The published MaskedConv re-creates conv.weight as a new Parameter inside forward, so the optimiser's
  # copy never receives a gradient: the weights stay at their (masked) init while the biases learn.
  # Their gradients are still computed here, as there, so a step costs what the published one does.
  params = [p for p in net.parameters() if m.masked_kernels == "train" or all(p is not q for q in masked)]
  return net, torch.optim.Adam(params, lr=config.train.learning_rate)


def batch_tensor(store, plan: clips.TrainPlan, step: int) -> torch.Tensor:
  """(B, C, T, H, W) float32 in [0, 1]: the frames the JAX trainer gets at `step`, divided the same way."""
  frames = torch.from_numpy(np.ascontiguousarray(store.frames[plan.frame_indices(step)]))
  return (frames.float() / 255.0).permute(0, 4, 1, 2, 3).contiguous()


def _atomic_write(path: str, write) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    write(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def train(config, workdir: str) -> dict:
  """Trains the twin; writes workdir/torch.pt and returns the training record."""
  c, t = config, config.train
  os.makedirs(workdir, exist_ok=True)  # before the training, not at the save
  threads = os.cpu_count() or 1
  torch.set_num_threads(threads)
  store = train_data.load_split(c, workdir, "train")
  windows = clips.train_windows(store.lengths, c.model.temporal, c.data.stride, names=store.video_names)
  plan = clips.TrainPlan(windows, t.batch_size, c.model.temporal, t.seed)
  total = t.num_steps if t.num_steps > 0 else t.epochs * plan.steps_per_epoch
  net, opt = build_twin(c)
  centre = (c.model.temporal - 1) // 2
  print(
    f"training the PyTorch twin ({c.model.variant}, masked_kernels={c.model.masked_kernels}) for {total} steps "
    f"({plan.steps_per_epoch} per epoch, batch {t.batch_size}, {threads} torch threads)",
    flush=True,
  )
  net.train()
  losses, step_s, begin = [], [], time.perf_counter()
  for step in range(total):
    tick = time.perf_counter()
    x = batch_tensor(store, plan, step)
    loss = torch_reference.norm_loss(x[:, :, centre], net(x))
    net.zero_grad(set_to_none=True)  # all of them: the frozen weights' gradients are never applied
    loss.backward()
    opt.step()
    value = loss.item()
    step_s.append(time.perf_counter() - tick)
    if not math.isfinite(value):
      raise UserError(f"the loss is {value} at step {step + 1}; nothing was saved")
    done = step + 1
    if done % LOG_EVERY == 0 or done == total:
      losses.append([done, value])
      print(f"step {done}/{total}: loss {value:.5f} ({time.perf_counter() - begin:.0f} s)", flush=True)
  wall = time.perf_counter() - begin
  path = os.path.join(workdir, "torch.pt")
  _atomic_write(path, lambda tmp: torch.save(net.state_dict(), tmp))
  print(f"trained in {wall:.1f} s ({float(np.median(step_s)):.3f} s/step median); wrote {path}", flush=True)
  return {
    "steps": total,
    "steps_per_epoch": plan.steps_per_epoch,
    "final_loss": losses[-1][1] if losses else None,
    "losses": losses,
    "train_seconds": round(wall, 2),
    "step_seconds_median": round(float(np.median(step_s)), 4),
    "torch_threads": threads,
    "torch_version": torch.__version__,
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    "load_average": [round(v, 2) for v in os.getloadavg()],
  }


def to_bundle(config, workdir: str, record: dict) -> str:
  """torch.pt -> workdir/bundle, through convert_torch (the importer users run on published checkpoints)."""
  m = config.model
  checkpoint = os.path.join(workdir, "torch.pt")
  variables = convert_torch.convert_state_dict(
    convert_torch.load_torch_state_dict(checkpoint), m.variant, m.latent_dim, config.data.channels, m.temporal
  )
  with open(checkpoint, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  model_config = dict(
    variant=m.variant,
    latent_dim=m.latent_dim,
    channels=config.data.channels,
    temporal=m.temporal,
    image_size=list(config.data.image_size),
  )
  # checkpoint_step lands in the report as it does for a JAX checkpoint.
  metadata = dict(
    source="benchmarks/torch_train.py (PyTorch twin, published training loop)",
    checkpoint="torch.pt",
    checkpoint_sha256=digest,
    checkpoint_step=record["steps"],
    masked_kernels=m.masked_kernels,
    learning_rate=config.train.learning_rate,
    batch_size=config.train.batch_size,
    seed=config.train.seed,
  )
  return bundle.save(os.path.join(workdir, "bundle"), variables, model_config, metadata)  # temp dir + rename


def run(config, workdir: str) -> dict:
  check_config(config)
  record = train(config, workdir)
  record["bundle"] = to_bundle(config, workdir, record)
  record["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in config_lib.flatten(config).items()}
  text = json.dumps(record, indent=2) + "\n"

  def write(tmp):
    with open(tmp, "w") as f:
      f.write(text)

  _atomic_write(os.path.join(workdir, "torch_train.json"), write)
  from maskedskip_jax.eval import evaluate  # pylint: disable=g-import-not-at-top  (pulls in JAX scoring)

  record["eval"] = evaluate.run(config, workdir, trained=bundle.load_for_config(config, record["bundle"]))
  return record


def main(argv) -> None:
  workdir = app_lib.script_workdir(argv)
  try:
    run(app_lib.load_config(_CONFIG), workdir)
  except UserError as e:
    app_lib.fail(e)


if __name__ == "__main__":
  _CONFIG = app_lib.define_config_flag(sys.argv, os.path.join(ROOT, "configs", "ped2.py"))
  app.run(main)
