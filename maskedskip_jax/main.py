r"""Train, evaluate and export MaskedSkipUNet: `python -m maskedskip_jax.main`.

  python -m maskedskip_jax.main                                   # synthetic default
  python -m maskedskip_jax.main --config=configs/ped2.py --config.data.root=/data/UCSDped2
  python -m maskedskip_jax.main --config=configs/ped2.py --mode=eval --workdir=runs/ped2
  python -m maskedskip_jax.main --config=configs/ped2_cpu.py --mode=baselines --workdir=runs/ped2_cpu

Modes: train_and_eval (default), train, eval, export, baselines (the no-learning baselines alone on the test
set: no training, no checkpoint; workdir/baselines/, see eval/baseline_eval.py). Re-running a command with
the same --workdir resumes from its newest checkpoint. Multi-process runs call
jax.distributed.initialize() (found from the launcher's environment, or from
--coordinator_address/--num_processes/--process_id).
"""

import importlib
import os
import sys

from absl import flags

from maskedskip_jax import app as app_lib
from maskedskip_jax.errors import UserError

# Each mode's module, imported only when asked for: evaluation and export pull in more than training needs.
MODES = {
  "train_and_eval": None,
  "train": None,
  "eval": "maskedskip_jax.eval.evaluate",
  "export": "maskedskip_jax.deploy.export",
  "baselines": "maskedskip_jax.eval.baseline_eval",
}
EXIT_PREEMPTED = app_lib.EXIT_PREEMPTED

_MODE = flags.DEFINE_enum("mode", "train_and_eval", list(MODES), "What to run.")


def mode_module(name: str):
  """The module that runs `name` (a dotted module path), as a UserError when this installation lacks it."""
  try:
    return importlib.import_module(name)
  except ModuleNotFoundError as e:
    if e.name == name:
      raise UserError(f"--mode needs {name.replace('.', '/')}.py, which this installation does not have") from None
    raise


def run(config, workdir: str, mode: str, config_name: str | None = None) -> int:
  """Runs `mode`; returns the process exit code."""
  if mode in ("train", "train_and_eval"):
    from maskedskip_jax.train import loop  # pylint: disable=g-import-not-at-top

    if loop.train(config, workdir)["preempted"]:
      return EXIT_PREEMPTED
  if mode in ("eval", "train_and_eval"):
    mode_module(MODES["eval"]).run(config, workdir)
  if mode == "export":
    mode_module(MODES["export"]).run(config, workdir, config_name=config_name)
  if mode == "baselines":
    mode_module(MODES["baselines"]).run(config, workdir)
  return 0


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    app_lib.fail(f"unexpected arguments {' '.join(argv[1:])}; flags look like --mode=train")
  # Orbax and JAX log routine events as INFO and WARNING; progress has its own lines.
  app_lib.quiet_logs()
  from maskedskip_jax.train import checkpointing  # pylint: disable=g-import-not-at-top

  checkpointing.ignore_closed_loop_reports()
  try:
    config = app_lib.load_config()
    app_lib.initialize_processes()
    name = app_lib.config_name()
    code = run(config, app_lib.WORKDIR.value or os.path.join("runs", name), _MODE.value, name)
  except UserError as e:
    app_lib.fail(e)
  sys.exit(code)


def cli(argv: list[str] | None = None) -> None:
  """The `maskedskip-jax` console script and `python -m maskedskip_jax.main`."""
  app_lib.run(main, argv)


if __name__ == "__main__":
  cli()
