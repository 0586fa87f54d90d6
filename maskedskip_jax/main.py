r"""Train, evaluate and export MaskedSkipUNet: `python -m maskedskip_jax.main`.

  python -m maskedskip_jax.main                                   # synthetic default
  python -m maskedskip_jax.main --config=configs/ped2.py --config.data.root=/data/UCSDped2
  python -m maskedskip_jax.main --config=configs/ped2.py --mode=eval --workdir=runs/ped2
  python -m maskedskip_jax.main --config=configs/ped2_cpu.py --mode=baselines --workdir=runs/ped2_cpu

Modes: train_and_eval (default), train, eval, export, baselines (the no-learning baselines alone on the test
set: no training, no checkpoint; workdir/baselines/, see baseline_eval). Re-running a command with
the same --workdir resumes from its newest checkpoint. Multi-process runs call
jax.distributed.initialize() (found from the launcher's environment, or from
--coordinator_address/--num_processes/--process_id).
"""

import importlib
import logging as std_logging
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from maskedskip_jax import app as app_lib
from maskedskip_jax import config_check
from maskedskip_jax.errors import UserError

MODES = ("train_and_eval", "train", "eval", "export", "baselines")
EXIT_PREEMPTED = 143  # 128 + SIGTERM: the job stopped early but cleanly; rerun to resume
_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                               "synthetic.py")

_CONFIG = None  # defined by cli(): config_flags reads the default file and argv when defined
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (checkpoints, metrics, eval); default runs/<config>.")
_MODE = flags.DEFINE_enum("mode", "train_and_eval", MODES, "What to run.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")


def _fail(message) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def _define_config_flag() -> None:
  global _CONFIG
  try:
    _CONFIG = config_flags.DEFINE_config_file(
        "config", _DEFAULT_CONFIG, "Config file (configs/*.py); override keys with --config.train.batch_size=8.",
        lock_config=True)
  except Exception as e:  # pylint: disable=broad-except
    _fail(f"--config: {type(e).__name__}: {' '.join(str(e).split())}")


def _flag_error_message(message: str) -> str:
  """absl's 'flag --config.k=v: <python error>' -> 'config key k: expected <type>, got v'."""
  match = re.match(r"flag --config\.([\w.]+)=(.*?): ", message)
  if match and match.group(1) in config_check.SCHEMA:
    key, value = match.groups()
    kind = {"size": "(height, width)"}.get(config_check.SCHEMA[key].kind, config_check.SCHEMA[key].kind)
    return f"config key {key}: expected {kind}, got {value!r}"
  return message


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with config mistakes as one line and exit code 1."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(_flag_error_message(str(e).splitlines()[0]))
  except Exception as e:  # pylint: disable=broad-except
    # config_flags raises plain Python errors for a config file that does not load.
    _fail(f"--config: {type(e).__name__}: {' '.join(str(e).split())}")
  return []


def _config_name() -> str:
  path = config_flags.get_config_filename(flags.FLAGS["config"])
  return os.path.splitext(os.path.basename(path.split(":")[0]))[0]


def load_config():
  path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
  if not os.path.isfile(path):
    raise UserError(f"--config: {path} not found; expected a config file such as configs/synthetic.py")
  config = _CONFIG.value
  try:
    config_check.flatten(config)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"--config: {path} did not load: {type(e).__name__}: {' '.join(str(e).split())}") from None
  config_check.validate(config)
  return config


def _module(name: str):
  """evaluate / export / baseline_eval, imported only when asked for (they pull in more)."""
  try:
    return importlib.import_module(f"maskedskip_jax.{name}")
  except ModuleNotFoundError as e:
    if e.name == f"maskedskip_jax.{name}":
      raise UserError(f"--mode needs maskedskip_jax/{name}.py, which this installation does not have") from None
    raise


def run(config, workdir: str, mode: str, config_name: str | None = None) -> int:
  """Runs `mode`; returns the process exit code."""
  if mode in ("train", "train_and_eval"):
    from maskedskip_jax import train  # pylint: disable=g-import-not-at-top
    result = train.train(config, workdir)
    if result["preempted"]:
      return EXIT_PREEMPTED
  if mode in ("eval", "train_and_eval"):
    _module("evaluate").run(config, workdir)
  if mode == "export":
    _module("export").run(config, workdir, config_name=config_name)
  if mode == "baselines":
    _module("baseline_eval").run(config, workdir)
  return 0


class _NoLibraryTracebacks:
  """Orbax logs its background-thread failures with tracebacks; ours is the one line that matters."""

  def filter(self, record) -> bool:
    if any(f"{os.sep}{name}{os.sep}" in record.pathname for name in ("orbax", "asyncio")):
      record.exc_info, record.exc_text = None, None
    return True


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _fail(f"unexpected arguments {' '.join(argv[1:])}; flags look like --mode=train")
  if not flags.FLAGS["verbosity"].present:
    # Orbax and JAX log routine events as INFO and WARNING; progress has its own lines.
    logging.set_verbosity(logging.ERROR)
  for logger in (logging.get_absl_logger(), std_logging.getLogger("asyncio")):
    logger.addFilter(_NoLibraryTracebacks())
  from maskedskip_jax import checkpointing  # pylint: disable=g-import-not-at-top
  checkpointing.ignore_closed_loop_reports()
  try:
    config = load_config()
    from maskedskip_jax import sharding  # pylint: disable=g-import-not-at-top
    sharding.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    workdir = _WORKDIR.value or os.path.join("runs", _config_name())
    code = run(config, workdir, _MODE.value, _config_name())
  except UserError as e:
    _fail(e)
  sys.exit(code)


def cli(argv: list[str] | None = None) -> None:
  """The console entry point."""
  argv = list(sys.argv if argv is None else argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # Unknown keys first: config_flags already applies overrides when the flag is defined.
  app_lib.exit_on_unknown_override(argv)
  _define_config_flag()
  app.run(main, argv=argv, flags_parser=parse_flags)


if __name__ == "__main__":
  cli()
