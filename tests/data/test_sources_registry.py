"""The registry (data_pipeline.registry): dataset names to layouts, and what it says when it cannot."""

import pytest

from data_pipeline import registry
from data_pipeline.sources import generic
from maskedskip_jax.errors import UserError
from tests import fake_layouts


def test_registry_unknown_name_lists_known():
  with pytest.raises(UserError, match="ucsd_ped1, ucsd_ped2, .*synthetic"):
    registry.list_videos("kitti", "/tmp", "train")


def test_registry_synthetic_is_generic(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path))
  assert fake_layouts.summary(registry.list_videos("synthetic", root, "test")) == fake_layouts.summary(
    generic.list_videos(root, "test")
  )


@pytest.mark.parametrize("name", registry.KNOWN)
def test_registry_missing_root_names_path(tmp_path, name):
  with pytest.raises(UserError, match="nowhere"):
    registry.list_videos(name, str(tmp_path / "nowhere"), "test")
