"""Image-to-image translation studio: the core shared by every model family."""

from .errors import TranslatorError
from .family import Architecture, Family, Task, setting
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["Architecture", "Family", "Task", "TranslatorError", "hookimpl", "setting", "__version__"]
