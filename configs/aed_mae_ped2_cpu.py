r"""AED-MAE (seed 004) on UCSD Ped2 as it trains in under half an hour on a 2-core CPU (issue #18 item 6).

  python -m maskedskip_jax.main --config=configs/aed_mae_ped2_cpu.py --mode=train_and_eval \
      --workdir=runs/aed_mae_ped2_cpu
  python -m maskedskip_jax.main --config=configs/aed_mae_ped2_cpu.py --mode=train_and_eval \
      --workdir=runs/aed_mae_ped2_cpu_full --config.data.name=ucsd_ped2 \
      --config.data.root=/data/UCSD_Anomaly_Dataset.v1p2

`configs/aed_mae_ped2.py` (the paper's settings) with three changes, each forced by the machine: tokens of 8x8
instead of 4x4 (a quarter of the tokens, about 7x faster a step), batch 20 instead of 100 (100 does not fit in
23 GB at 4x4), and 30 epochs, three quarters of them for the teacher and a quarter for the student, instead of
100 + 40 (60 epochs scored lower on the dev videos). Everything else (Adam 1e-4, mask ratio 0.5, frames t-3, t,
t+3, feathered pastes into a quarter of the frames, the score of Eq. 6 with test-time masking) is the paper's
config. BENCHMARKS.md (AED-MAE on the CPU) has this run's wall time and AUCs beside the no-learning baselines, and
why 8x8 tokens cost AUC on Ped2 at 80x160 (a token holds a whole pedestrian); the paper's 4x4 needs a GPU or
about 15 hours here.
"""

import importlib.util
import os


def _paper_config():
  """configs/aed_mae_ped2.py's config, loaded from beside this file (configs/ is a folder, not a package)."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aed_mae_ped2.py")
  spec = importlib.util.spec_from_file_location("aed_mae_ped2", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def get_config():
  config = _paper_config()
  config.model.aed_mae.patch = 8
  config.train.batch_size = 20
  config.train.epochs = 30
  config.train.stage2_fraction = 0.25
  return config
