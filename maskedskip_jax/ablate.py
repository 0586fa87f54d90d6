r"""The ablation tables from the command line: `python -m maskedskip_jax.ablate` (the work is in experiments/).

  python -m maskedskip_jax.ablate --config=configs/synthetic.py
  python -m maskedskip_jax.ablate --config=configs/ped2.py --config.data.root=/data/UCSDped2 \
      --workdir=runs/ablate_ped2 --variants=maskedskip_unet,unet,autoencoder
  python -m maskedskip_jax.ablate --config=configs/synthetic.py --parts=all
  python -m maskedskip_jax.ablate --config=configs/aed_mae_ped2.py

Without `--parts`: paper Table 2, the nine variants (experiments/ablation.py). With `--parts`: the config's
variant (or each of --variants) with each listed part on alone and all together (experiments/parts.py). An
AED-MAE config (`model.variant=aed_mae`) gets its own paper's Table 2 instead: a vanilla masked AE, then each of
its components added in turn (experiments/aed_mae_ablation.py).
Default workdir: runs/ablate_<config>. Rerunning skips finished rows and resumes an interrupted one.
"""

import os
import sys

from absl import flags
from absl import logging

from maskedskip_jax import app as app_lib
from maskedskip_jax.errors import UserError
from maskedskip_jax.experiments import parts as parts_lib
from maskedskip_jax.nn import models

_VARIANTS = flags.DEFINE_list("variants", None, f"Variants to run (default all): {','.join(models.VARIANTS)}.")
_PARTS = flags.DEFINE_list(
  "parts",
  None,
  "Parts to ablate on the config's variant ('all' or some of "
  f"{','.join(parts_lib.PARTS)}): one row per part, in parts.md.",
)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    app_lib.fail(f"unexpected arguments {' '.join(argv[1:])}; flags look like --variants=unet,autoencoder")
  app_lib.quiet_logs(logging.WARNING)
  try:
    config = app_lib.load_config()
    app_lib.initialize_processes()
    name = app_lib.config_name()
    workdir = app_lib.WORKDIR.value or os.path.join("runs", f"ablate_{name}")
    if config.model.variant == "aed_mae":
      if _PARTS.value is not None or _VARIANTS.value is not None:
        raise UserError("--parts/--variants: an aed_mae config ablates AED-MAE's own components (its Table 2)")
      from maskedskip_jax.experiments import aed_mae_ablation  # pylint: disable=g-import-not-at-top

      result = aed_mae_ablation.run(config, workdir, config_name=name)
    elif _PARTS.value is not None:
      result = parts_lib.run(config, workdir, _PARTS.value, _VARIANTS.value, config_name=name)
    else:
      from maskedskip_jax.experiments import ablation  # pylint: disable=g-import-not-at-top

      result = ablation.run(config, workdir, _VARIANTS.value, config_name=name)
  except UserError as e:
    app_lib.fail(e)
  sys.exit(app_lib.EXIT_PREEMPTED if result["preempted"] else 0)


def cli(argv: list[str] | None = None) -> None:
  """The `maskedskip-ablate` console script and `python -m maskedskip_jax.ablate`."""
  app_lib.run(main, argv)


if __name__ == "__main__":
  cli()
