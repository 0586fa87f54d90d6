"""The batch reconstruction CLI: end to end in a subprocess, and its one-line errors."""

import os
import pathlib
import re
import subprocess
import sys

import jax
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax import reconstruct as reconstruct_cli
from maskedskip_jax.deploy import bundle
from maskedskip_jax.nn import models

ROOT = pathlib.Path(__file__).resolve().parents[2]
N, T, H, W, C = 5, 3, 32, 32, 1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  model = models.build("maskedskip_unet", latent_dim=16, channels=C)
  variables = random_variables(model, seed=3)
  path = tmp_path_factory.mktemp("recon") / "bundle"
  bundle.save(str(path), variables, {"variant": "maskedskip_unet", "latent_dim": 16, "channels": C})
  clips = np.random.default_rng(0).uniform(0, 1, (N, T, H, W, C)).astype(np.float32)
  return model, variables, path, clips


def run_cli(*args):
  return subprocess.run(
    [sys.executable, "-m", "maskedskip_jax.reconstruct", *map(str, args)],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "PYTHONPATH": str(ROOT)},
  )


def test_cli_end_to_end(tiny, tmp_path):
  model, variables, path, clips = tiny
  np.save(tmp_path / "clips.npy", clips)
  # Batch 2 over 5 clips: the last batch is padded, and must not leak into the output.
  proc = run_cli(
    "--model", path, "--input", tmp_path / "clips.npy", "--output", tmp_path / "recon.npy", "--batch-size", 2
  )
  assert proc.returncode == 0, proc.stderr
  recon = np.load(tmp_path / "recon.npy")
  assert recon.shape == (N, H, W, C) and recon.dtype == np.float32
  want = np.asarray(jax.jit(lambda x: model.apply(variables, x, train=False))(clips))
  np.testing.assert_allclose(recon, want, atol=1e-5, rtol=0)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["clips.npy", "recon.npy"]  # no temp files left


def test_cli_error_is_one_line_without_traceback(tiny, tmp_path):
  _, _, path, clips = tiny
  np.save(tmp_path / "clips.npy", clips[:, :, :, :, :0])
  proc = run_cli("--model", path, "--input", tmp_path / "clips.npy", "--output", tmp_path / "recon.npy")
  assert proc.returncode == 1
  assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")
  assert "expected 1 channels, got 0" in proc.stderr and "Traceback" not in proc.stderr
  assert not (tmp_path / "recon.npy").exists()


def _write_bad(tmp_path, kind, clips):
  path = tmp_path / "clips.npy"
  if kind == "ndim":
    np.save(path, clips[:, 1])
  elif kind == "temporal":
    np.save(path, clips[:, :1])
  elif kind == "channels":
    np.save(path, np.repeat(clips, 3, axis=-1))
  elif kind == "dtype":
    np.save(path, (clips * 255).astype(np.uint8))
  elif kind == "range":
    np.save(path, clips * 255)
  elif kind == "pickle":
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
  elif kind == "not_npy":
    path.write_text("hello")
  return path


@pytest.mark.parametrize(
  "kind,needle",
  [
    ("ndim", r"expected clips of shape \(N, T, H, W, C\)"),
    ("temporal", "expected T=3"),
    ("channels", "expected 1 channels, got 3"),
    ("dtype", "got dtype uint8"),
    ("range", r"values must lie in \[0, 1\]"),
    ("pickle", "not a plain .npy array"),
    ("not_npy", "not a plain .npy array"),
  ],
)
def test_bad_inputs_fail_cleanly(tiny, tmp_path, capsys, kind, needle):
  _, _, path, clips = tiny
  bad = _write_bad(tmp_path, kind, clips)
  out = tmp_path / "recon.npy"
  assert reconstruct_cli.main(["--model", str(path), "--input", str(bad), "--output", str(out)]) == 1
  err = capsys.readouterr().err
  assert err.startswith(f"error: {bad}") and err.count("\n") == 1
  assert re.search(needle, err)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["clips.npy"]  # no output, no temp file


def test_damaged_bundle_fails_cleanly(tiny, tmp_path, capsys):
  _, _, path, clips = tiny
  np.save(tmp_path / "clips.npy", clips)
  assert (
    reconstruct_cli.main(
      ["--model", str(tmp_path / "nope"), "--input", str(tmp_path / "clips.npy"), "--output", str(tmp_path / "r.npy")]
    )
    == 1
  )
  assert "no such model bundle directory" in capsys.readouterr().err
