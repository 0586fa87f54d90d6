"""The Colab notebooks, executed end to end on CPU in smoke mode (`pytest -k notebook`).

Each notebook reads MASKEDSKIP_SMOKE=1 (tiny sizes, a fake dataset, no installs) and MASKEDSKIP_WORK (where its data,
runs and caches go). Both run in one test, quickstart first, sharing one work folder: the TPU notebook's smoke
settings match the quickstart's, so it reuses the compiled train step from the shared compilation cache.
"""

import base64
import glob
import json
import os
import re
import sys
import zipfile

import pytest
import tiny_run

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("tensorflow_datasets")  # train_tpu.ipynb builds a TFDS dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLAB = os.path.join(REPO, "colab")
NOTEBOOKS = ("quickstart.ipynb", "train_tpu.ipynb")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Credentials that must never be saved in a notebook (Google API keys, GitHub and AWS tokens, private keys, or a
# secret assigned to a variable).
_SECRETS = re.compile(
  r"AIza[0-9A-Za-z_\-]{35}|gh[pousr]_[0-9A-Za-z]{30,}|AKIA[0-9A-Z]{16}"
  r"|-----BEGIN [A-Z ]*PRIVATE KEY"
  r"|(?i:(?:api_?key|secret|token|password)\s*=\s*[\"'][^\"']+[\"'])"
)
# Cell metadata Colab adds on execution: the user's name and id, timings.
_COLAB_RUN_KEYS = ("executionInfo", "outputId")


def _read(name):
  return nbformat.read(os.path.join(COLAB, name), as_version=4)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_saved_without_outputs_or_secrets(name):
  nb = _read(name)
  nbformat.validate(nb)
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == "code":
      assert cell.outputs == [], f"{name} cell {i}: saved with outputs; clear them before committing"
      assert cell.execution_count is None, f"{name} cell {i}: saved with an execution count"
    left = [k for k in _COLAB_RUN_KEYS if k in cell.metadata]
    assert not left, f"{name} cell {i}: saved with run metadata {left}"
  assert "widgets" not in nb.metadata, f"{name}: saved with widget state"
  with open(os.path.join(COLAB, name)) as f:
    found = _SECRETS.search(f.read())
  assert found is None, f"{name}: looks like a credential: {found.group(0)[:12]}..."


def _execute(name, env):
  nb = _read(name)
  client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": COLAB}})
  client.execute(env=env)
  return nb


def _outputs(nb, output_type=None):
  return [
    o
    for cell in nb.cells
    if cell.cell_type == "code"
    for o in cell.outputs
    if output_type is None or o.output_type == output_type
  ]


def _text(nb):
  return "".join(o.text for o in _outputs(nb, "stream"))


def _pngs(nb):
  """Decoded PNG images the notebook displayed."""
  return [base64.b64decode(o.data["image/png"]) for o in _outputs(nb) if "image/png" in o.get("data", {})]


def _report(workdir):
  with open(os.path.join(workdir, "eval", "report.json")) as f:
    return json.load(f)


def _check_bundle(bundle_dir):
  from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top

  assert os.path.isfile(os.path.join(bundle_dir, "manifest.json")), f"no bundle in {bundle_dir}"
  bundle.verify(bundle_dir)  # every file matches its checksum


def _check_quickstart(nb, work):
  workdir = os.path.join(work, "runs", "quickstart")
  assert "backend: CPU" in _text(nb)  # the accelerator line
  report = _report(workdir)
  assert 0.0 <= report["frame_auc_micro"] <= 1.0
  labels = glob.glob(os.path.join(work, "synthetic", "test", "*.txt"))
  assert labels, "the synthetic dataset was not generated"
  total = 0
  for path in labels:
    with open(path) as f:
      total += len(f.read().split())
  assert report["num_frames"] == total  # every test frame scored
  _check_bundle(os.path.join(workdir, "export"))
  pngs = _pngs(nb)
  # The ROC curve, a score curve and the reconstruction figure.
  assert len(pngs) >= 3, f"quickstart displayed {len(pngs)} images, expected 3"
  assert all(p.startswith(PNG_SIGNATURE) for p in pngs)


def _check_train_tpu(nb, work):
  workdir = os.path.join(work, "runs", "train_tpu")
  text = _text(nb)
  assert os.path.isdir(os.path.join(work, "runs", "tensorflow_datasets", "ucsd_ped2")), "no TFDS build"
  # The run stopped by SIGTERM saved a checkpoint mid-run, and the next command resumed from it.
  assert "exit code: 143" in text, "the simulated reset did not stop training early"
  resumed = re.search(r"resumed from \S+/checkpoints/(\d+)", text)
  assert resumed, "training did not resume after the simulated reset"
  report = _report(workdir)
  assert 0 < int(resumed.group(1)) < report["checkpoint_step"]
  frames = glob.glob(os.path.join(work, "fake_drive", "*", "UCSDped2", "Test", "Test*", "*.tif"))
  assert frames and report["num_frames"] == len(frames)
  assert 0.0 <= report["frame_auc_micro"] <= 1.0
  _check_bundle(os.path.join(workdir, "export"))
  with zipfile.ZipFile(os.path.join(work, "maskedskip_ucsd_ped2.zip")) as archive:
    assert "manifest.json" in archive.namelist()
  pngs = _pngs(nb)
  assert pngs and all(p.startswith(PNG_SIGNATURE) for p in pngs)


def test_notebooks_execute_in_smoke_mode(tmp_path):
  work = str(tmp_path / "work")
  env = dict(
    os.environ,
    MASKEDSKIP_SMOKE="1",
    MASKEDSKIP_WORK=work,
    PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
    PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
  )
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user's machine has
  # The notebooks compile into WORK/jax_cache: made the suite's shared cache, whose entries then match across runs
  # once their keys leave out the cache's own path (which JAX adds for its GPU autotuning caches, unused on a CPU).
  env["JAX_PERSISTENT_CACHE_ENABLE_XLA_CACHES"] = "none"
  os.makedirs(tiny_run.JAX_CACHE, exist_ok=True)
  os.makedirs(work)
  os.symlink(tiny_run.JAX_CACHE, os.path.join(work, "jax_cache"))
  _check_quickstart(_execute("quickstart.ipynb", env), work)
  _check_train_tpu(_execute("train_tpu.ipynb", env), work)
