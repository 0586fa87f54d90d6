"""The one error type for mistakes a user can make; defined in `data_pipeline.errors`, which both packages use."""

from data_pipeline.errors import UserError

__all__ = ["UserError"]
