"""TFDS builders: build tiny fake trees, read them back, feed the frame store."""

import os

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
from data_pipeline import registry  # pylint: disable=g-import-not-at-top
from data_pipeline import tfds_builders  # pylint: disable=g-import-not-at-top
from maskedskip_jax.errors import UserError  # pylint: disable=g-import-not-at-top
from tests import fake_layouts  # pylint: disable=g-import-not-at-top

GT_LINES = ("[2:4]", "[1:2, 6:8]")


@pytest.fixture(scope="module")
def ped2(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("ped2")
  manual = str(tmp / "manual")
  fake_layouts.make_ucsd(manual, train=(4, 5), test=(6, 8), gt_lines=GT_LINES)
  data_dir = str(tmp / "tfds")
  builder = tfds_builders.UcsdPed2(data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
  return builder, manual, data_dir


def test_every_builder_is_registered_with_instructions():
  for name in ("ucsd_ped1", "ucsd_ped2", "cuhk_avenue", "shanghaitech"):
    cls = tfds.builder_cls(name)
    assert cls.SOURCE == name
    assert "manual dir" in cls.MANUAL_DOWNLOAD_INSTRUCTIONS
  assert tfds.builder_cls("synthetic") is tfds_builders.Synthetic


def test_ucsd_ped2_examples_match_the_source(ped2):
  builder, manual, _ = ped2
  assert builder.info.splits["train"].num_examples == 2
  for split in ("train", "test"):
    videos = registry.list_videos("ucsd_ped2", manual, split)
    examples = list(tfds.as_numpy(builder.as_dataset(split=split)))
    assert [e["name"].decode() for e in examples] == [v.name for v in videos]
    for example, video in zip(examples, videos):
      frames = example["frames"]
      assert frames.shape == (video.num_frames, *fake_layouts.SIZE, 1)
      for k, frame in enumerate(frames):
        assert (frame == fake_layouts.frame_value(k)).all()
      assert example["has_labels"] == (video.labels is not None)
      if video.labels is not None:
        np.testing.assert_array_equal(example["labels"], video.labels)
  test = list(tfds.as_numpy(builder.as_dataset(split="test")))
  np.testing.assert_array_equal(test[1]["labels"], fake_layouts.labels_from_ranges(8, [(1, 2), (6, 8)]))


def test_load_split_from_tfds_equals_load_split_from_files(ped2, tmp_path):
  _, manual, data_dir = ped2
  for split in ("train", "test"):
    files = pipeline.load_split("ucsd_ped2", manual, split, (8, 12), 3)
    built = pipeline.load_split("ucsd_ped2", None, split, (8, 12), 3, cache_dir=str(tmp_path), tfds_data_dir=data_dir)
    assert built.video_names == files.video_names
    np.testing.assert_array_equal(built.lengths, files.lengths)
    np.testing.assert_array_equal(built.frames, files.frames)
    for v in range(files.num_videos):
      a, b = built.labels(v), files.labels(v)
      assert (a is None) == (b is None)
      if a is not None:
        np.testing.assert_array_equal(a, b)
  with pytest.raises(UserError, match="not built"):
    pipeline.load_split("ucsd_ped1", None, "test", 8, 3, tfds_data_dir=data_dir)


def test_synthetic_builder_generates_and_builds(tmp_path):
  config = tfds_builders.SyntheticConfig(
    name="tiny", workers=1, params=dict(num_train=1, num_test=2, frames_per_video=8, height=32, width=32)
  )
  builder = tfds_builders.Synthetic(config=config, data_dir=str(tmp_path))
  builder.download_and_prepare()
  test = list(tfds.as_numpy(builder.as_dataset(split="test")))
  assert [e["frames"].shape for e in test] == [(8, 32, 32, 3)] * 2
  assert all(e["has_labels"] and e["labels"].any() for e in test)
  generated = [d for d in os.listdir(tmp_path / "downloads") if d.startswith("synthetic-")]
  videos = registry.list_videos("synthetic", str(tmp_path / "downloads" / generated[0]), "test")
  for example, video in zip(test, videos):
    np.testing.assert_array_equal(example["labels"], video.labels)
  # A custom config is read back by its full name, through the store.
  built = pipeline.load_split("synthetic/tiny", None, "test", 16, 3, tfds_data_dir=str(tmp_path))
  files = pipeline.load_split("synthetic", str(tmp_path / "downloads" / generated[0]), "test", 16, 3)
  np.testing.assert_array_equal(built.frames, files.frames)


def test_cli_asks_for_the_manual_dir(tmp_path, capsys):
  from data_pipeline.tfds_builders import __main__ as cli  # pylint: disable=g-import-not-at-top

  assert cli.main(["--dataset", "cuhk_avenue", "--data_dir", str(tmp_path)]) == 1
  assert "--manual_dir is required" in capsys.readouterr().err
