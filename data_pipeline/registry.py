"""Dataset names -> the source that lists their videos."""

from collections.abc import Callable
import functools

from data_pipeline.errors import UserError
from data_pipeline.sources import avenue
from data_pipeline.sources import frames
from data_pipeline.sources import generic
from data_pipeline.sources import shanghaitech
from data_pipeline.sources import ucsd
from data_pipeline.video import Video

KNOWN = ("ucsd_ped1", "ucsd_ped2", "cuhk_avenue", "shanghaitech", "generic", "frames", "synthetic")

_SOURCES: dict[str, Callable[[str, str], list[Video]]] = {
  "ucsd_ped1": functools.partial(ucsd.list_videos, ped=1),
  "ucsd_ped2": functools.partial(ucsd.list_videos, ped=2),
  "cuhk_avenue": avenue.list_videos,
  "shanghaitech": shanghaitech.list_videos,
  "generic": generic.list_videos,
  "frames": frames.list_videos,
  # The synthetic generator writes the generic layout.
  "synthetic": generic.list_videos,
}

# Frames per second of the layouts distributed at one rate, as their releases are commonly described (not read
# from the files: the UCSD and ShanghaiTech test sets are frame folders). Alarm events and false alarms per hour
# need it; the other layouts take data.fps.
FPS = {"ucsd_ped1": 10.0, "ucsd_ped2": 10.0, "cuhk_avenue": 25.0, "shanghaitech": 24.0}


def list_videos(name: str, root: str, split: str) -> list[Video]:
  """The videos of split 'train' or 'test' of dataset `name` stored at `root`."""
  if name not in _SOURCES:
    raise UserError(f"dataset {name!r}: unknown; expected one of {', '.join(KNOWN)}.")
  return _SOURCES[name](str(root), split)
