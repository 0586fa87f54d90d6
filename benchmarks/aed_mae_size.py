"""AED-MAE's size at the paper's settings: parameters and XLA's FLOP count of one inference forward per frame.

  python3 benchmarks/aed_mae_size.py

Prints one JSON object with a row per dataset setting (token size d, the authors' frame size for a 20 x 40 token
grid, grey or RGB frames stacked three deep), beside the paper's 3 M parameters and 0.8 GFLOPs. Not a speed figure:
the counts do not depend on the machine.
"""

import json
import os
import sys

# Runnable as a plain script from anywhere in the checkout.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskedskip_jax.nn import aed_mae  # noqa: E402

# (name, token side d, (H, W), channels c): the frame is stacked with two neighbours, so C_in = 3c.
SETTINGS = (("avenue", 16, (320, 640), 3), ("shanghaitech", 8, (160, 320), 3), ("ped2", 4, (80, 160), 1))


def main() -> int:
  rows = []
  for name, patch, (h, w), c in SETTINGS:
    model = aed_mae.AedMae(channels=c, patch=patch)
    params = aed_mae.count_params(aed_mae.variable_shapes(model, (1, h, w, 3 * c))["params"])
    gflops = aed_mae.gflops_per_frame(model, (h, w, 3 * c))
    rows.append(
      {
        "setting": name,
        "patch": patch,
        "frame": [h, w],
        "channels": c,
        "params": params,
        "gflops_per_frame": round(gflops, 2),
      }
    )
  print(json.dumps({"paper": {"params": 3_000_000, "gflops_per_frame": 0.8}, "rows": rows}, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
