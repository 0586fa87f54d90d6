"""The host side of the training loop: each step's metrics checked for divergence, the progress display (a bar
on a terminal, a plain line every ~30 s otherwise: `console`) and the metrics log fed, clips/s counted between log
points."""

import time

import jax
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import console
from maskedskip_jax.train import metrics_log


class Progress:
  """Host side of the loop: checks each step's metrics, feeds the bar and the log."""

  def __init__(self, config, workdir, start, total, schedule):
    self.batch_size, self.log_every = config.train.batch_size, config.train.log_every_steps
    self.schedule, self.total, self.workdir = schedule, total, workdir
    self.log = metrics_log.MetricsLog(workdir, start_step=start, enabled=jax.process_index() == 0)
    self.bar = console.Progress(total, initial=start, unit="step", desc="train", disable=jax.process_index() != 0)
    self.last_good = start
    self.saved = None
    self._mark = (start, None)  # (step, time) the clips/s is counted from
    self.rate = None

  def start_clock(self):
    self._mark = (self._mark[0], time.perf_counter())

  def check(self, step: int, metrics: dict[str, jax.Array]) -> None:
    loss, grad_norm = (float(np.asarray(metrics[k])) for k in ("loss", "grad_norm"))
    if not (np.isfinite(loss) and np.isfinite(grad_norm)):
      kept = f"checkpoint step {self.saved} is intact" if self.saved is not None else "no checkpoint was written"
      raise UserError(
        f"training diverged at step {step}: loss {loss}, gradient norm {grad_norm}; {kept} in "
        f"{checkpointing.checkpoint_dir(self.workdir)} (lower train.learning_rate or set "
        "train.grad_clip_norm)"
      )
    self.last_good = step
    now = time.perf_counter()
    if step % self.log_every == 0 or step == self.total:
      first, since = self._mark
      self.rate = self.batch_size * (step - first) / max(now - since, 1e-9)
      self._mark = (step, now)
      # Whatever else the step reports (the mask head's mask_loss) is logged as it is.
      extra = {k: float(np.asarray(v)) for k, v in metrics.items() if k not in ("loss", "grad_norm")}
      self.log.write(
        step,
        {
          "loss": loss,
          "clips_per_s": self.rate,
          "grad_norm": grad_norm,
          "learning_rate": float(self.schedule(step - 1)),
          **extra,
        },
      )
    self.bar.set_fields({"loss": f"{loss:.4f}", "clips/s": f"{self.rate:.1f}" if self.rate else "-"})
    self.bar.update(step - self.bar.n)

  def close(self):
    self.bar.close()
    self.log.close()
