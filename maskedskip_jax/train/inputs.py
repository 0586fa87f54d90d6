"""Where training and evaluation get their data: the dataset root (the synthetic set generated once, all
processes in step), a split's frame store, and the pasted-anomaly stage between the iterator and the step."""

import os

import jax


def with_pasted_anomalies(
  batches, *, start: int, seed: int, p: float, source: str, row_offset: int, blend: str = "hard", cutouts=()
):
  """Training batches with objects pasted into a share p of the clips (anomaly_paste), clean targets kept."""
  from data_pipeline import anomaly_paste  # pylint: disable=g-import-not-at-top

  for step, batch in enumerate(batches, start=start):
    clips, target, masks = anomaly_paste.paste_anomalies(
      batch["clips"], seed=seed, step=step, p=p, source=source, row_offset=row_offset, blend=blend, cutouts=cutouts
    )
    yield dict(batch, clips=clips, target=target, anomaly_map=masks[:, (clips.shape[1] - 1) // 2])


def cutouts(config) -> tuple:
  """train.paste_dir's object clips when train.paste_source is 'cutouts', else none."""
  if config.train.paste_source != "cutouts":
    return ()
  from data_pipeline import cutouts as cutouts_lib  # pylint: disable=g-import-not-at-top

  return cutouts_lib.load(config.train.paste_dir, config.data.channels)


def dataset_root(config, workdir: str, *, all_processes: bool = True) -> str | None:
  """data.root, or the synthetic dataset generated (once) into data.cache_dir.

  With `all_processes`, every process must call this (it synchronises them); without,
  only the calling process needs the data (evaluation, which process 0 does alone).
  """
  d = config.data
  if d.name != "synthetic" or d.root:
    return os.path.expanduser(d.root) if d.root else None
  from data_pipeline import synthetic  # pylint: disable=g-import-not-at-top

  cache = os.path.expanduser(d.cache_dir) if d.cache_dir else os.path.join(workdir, "data")
  if not all_processes or jax.process_count() == 1:
    return synthetic.ensure(cache, **d.synthetic)
  # Process 0 first, so that processes sharing a filesystem find it made.
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  if jax.process_index() == 0:
    root = synthetic.ensure(cache, **d.synthetic)
  multihost_utils.sync_global_devices("synthetic dataset")
  if jax.process_index() != 0:
    root = synthetic.ensure(cache, **d.synthetic)
  return root


def load_split(config, workdir: str, split: str, *, all_processes: bool = True):
  """The frame store of one split; `all_processes` as in dataset_root."""
  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top

  d = config.data
  root = dataset_root(config, workdir, all_processes=all_processes)
  return pipeline.load_split(
    d.name,
    root,
    split,
    image_size=tuple(d.image_size),
    channels=d.channels,
    cache_dir=os.path.expanduser(d.cache_dir) or None,
    tfds_data_dir=os.path.expanduser(d.tfds_data_dir) or None,
  )


def training_and_held_out(config, workdir: str, *, all_processes: bool = True):
  """(the training split minus its held-out share, the held-out share or None): data.holdout_share of the
  training videos never trains, so that an alarm threshold can be calibrated on normal footage (holdout)."""
  from data_pipeline import holdout  # pylint: disable=g-import-not-at-top

  return holdout.split(load_split(config, workdir, "train", all_processes=all_processes), config.data.holdout_share)
