"""The application's one error for the user: bad input, said in one line, exit status 2; and the
library's errors that mean the same."""
from __future__ import annotations

import sys


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""


#: the library's errors that mean bad input (a file, key or value to correct), by module and class:
#: the command line prints them as it prints ``UserError``. Named, not imported: a command loads
#: only the libraries it uses, and an error whose module never loaded was never raised.
BAD_INPUT = (("apt_video.config", "ConfigError"), ("apt_video.pipeline.data", "DataError"),
             ("apt_video.models.checkpoint", "CheckpointError"), ("apt_video.models.card", "CardError"),
             ("apt_video.export.package", "PackageError"), ("apt_video.export.runner", "BackendUnavailable"))


def is_bad_input(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``UserError`` or one of the library's ``BAD_INPUT`` errors."""
    return isinstance(exc, UserError) or any(
        module in sys.modules and isinstance(exc, getattr(sys.modules[module], name)) for module, name in BAD_INPUT)
