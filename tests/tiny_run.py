"""A tiny dataset and config for the training tests.

The dataset is a few 32x32 grey videos of a bright square drifting over a
gradient, in the generic layout; the config is a latent-16 MaskedSkipUNet that
compiles in seconds. `overrides` gives the same config as command-line flags for
the subprocess tests that run `python -m maskedskip_jax.main`.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTHETIC_CONFIG = os.path.join(REPO, "configs", "synthetic.py")
# One JAX compilation cache for every test process: the tiny model compiles once.
JAX_CACHE = os.path.join(tempfile.gettempdir(), "maskedskip_jax_tests_jax_cache")
# A narrow, shallow AED-MAE on 32 x 32 grey frames, 4 x 4 tokens of 8 x 8: every code path, a short compile.
AED_MAE = dict(
  model__variant="aed_mae",
  model__temporal=3,
  model__aed_mae__frame_offset=1,
  model__aed_mae__patch=8,
  model__aed_mae__embed_dim=16,
  model__aed_mae__depth=1,
  model__aed_mae__decoder_dim=16,
  model__aed_mae__decoder_depth=2,
)


def make_dataset(root: str, num_train: int = 2, num_test: int = 1, frames: int = 20, size: int = 32) -> str:
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:size, 0:size]
  for split, count in (("train", num_train), ("test", num_test)):
    for v in range(count):
      folder = os.path.join(root, split, f"v{v}")
      os.makedirs(folder, exist_ok=True)
      x0, y0, speed = rng.integers(0, size // 2, 2).tolist() + [int(rng.integers(1, 3))]
      for f in range(frames):
        # Texture noise keeps every BatchNorm channel's variance healthy; on near-constant
        # frames BatchNorm amplifies rounding so much that runs cannot be compared.
        img = 40 + 3 * xx + 2 * yy + rng.normal(0, 12, (size, size))
        x, y = (x0 + speed * f) % (size - 8), y0
        img[y : y + 8, x : x + 8] = 230
        img = np.clip(img, 0, 255)
        cv2.imwrite(os.path.join(folder, f"{f:03d}.png"), img.astype(np.uint8))
      if split == "test":
        labels = (np.arange(frames) >= frames // 2).astype(int)
        with open(os.path.join(root, split, f"v{v}.txt"), "w") as fh:
          fh.write("\n".join(map(str, labels)) + "\n")
  return root


def settings(root: str, cache_dir: str = JAX_CACHE, **kw) -> dict:
  s = {
    "data.name": "generic",
    "data.root": root,
    "data.image_size": (32, 32),
    "data.channels": 1,
    "data.cache_dir": "",
    "data.backend": "grain",
    "model.latent_dim": 16,
    "model.temporal": 3,
    "train.batch_size": 4,
    "train.num_steps": 6,
    "train.learning_rate": 1e-3,
    "train.checkpoint_every_steps": 3,
    "train.log_every_steps": 1,
    "train.compilation_cache_dir": cache_dir,
    "train.seed": 0,
  }
  s.update({k.replace("__", "."): v for k, v in kw.items()})
  return s


def config(root: str, cache_dir: str = JAX_CACHE, **kw):
  from maskedskip_jax import config as config_lib  # pylint: disable=g-import-not-at-top

  return config_lib.with_values(config_lib.default_config(), settings(root, cache_dir, **kw))


def synthetic_config(root: str, **kw):
  """configs/synthetic.py with these settings: what the command line gets from overrides(root, **kw)."""
  from maskedskip_jax import config as config_lib  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location("synthetic_config", SYNTHETIC_CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return config_lib.with_values(module.get_config(), settings(root, **kw))


def ablation_setup(tmp_path_factory, **kw):
  """(dataset root, config, workdir) of the ablation tests: three tiny videos and configs/synthetic.py."""
  root = make_dataset(str(tmp_path_factory.mktemp("data")), num_train=1, num_test=2, frames=9)
  return root, synthetic_config(root, **kw), str(tmp_path_factory.mktemp("ablate") / "work")


def overrides(root: str, cache_dir: str = JAX_CACHE, **kw) -> list[str]:
  out = []
  for key, value in settings(root, cache_dir, **kw).items():
    text = f"({value[0]},{value[1]})" if isinstance(value, tuple) else str(value)
    out.append(f"--config.{key}={text}")
  return out


def main_command(workdir: str, flags: list[str], mode: str = "train") -> list[str]:
  return [
    sys.executable,
    "-m",
    "maskedskip_jax.main",
    "--config=configs/synthetic.py",
    f"--workdir={workdir}",
    f"--mode={mode}",
    *flags,
  ]


def env(**extra) -> dict:
  """The test's environment for a child process, minus any XLA_FLAGS not asked for."""
  e = dict(os.environ)
  e.pop("XLA_FLAGS", None)
  e.update(extra, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return e


def popen_main(workdir: str, flags: list[str], mode: str = "train", **extra_env) -> subprocess.Popen:
  return subprocess.Popen(
    main_command(workdir, flags, mode),
    cwd=REPO,
    env=env(**extra_env),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def run_main(workdir: str, flags: list[str], mode: str = "train", timeout: float = 240, **extra_env):
  return subprocess.run(
    main_command(workdir, flags, mode),
    cwd=REPO,
    env=env(**extra_env),
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )
