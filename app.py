"""Image translator: the web app. Run `python app.py`, or publish the repository as a Space."""

import importlib.util
import sys
from pathlib import Path

# Where pyproject.toml's package-dir puts the repository's folders inside the installed package.
PACKAGE_DIRS = {"translator.default_plugins": "plugins", "translator.shipped": "checkpoints"}


def _use_checkout() -> None:
    """A Space runs this file from the repository without installing the project, so the
    folders an install maps into the package are mapped here the same way."""
    for name, folder in PACKAGE_DIRS.items():
        if importlib.util.find_spec(name) is not None:
            continue  # installed (or installed editable): the package has it
        location = Path(__file__).resolve().parent / folder
        spec = importlib.util.spec_from_file_location(name, location / "__init__.py", submodule_search_locations=[str(location)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


_use_checkout()

from translator.app import Studio, build_app, launch_options, warm_default  # noqa: E402  (after the folders are mapped)

studio = Studio()
demo = build_app(studio)

if __name__ == "__main__":
    # the default model (and this CPU's int8 of it) is made while the server starts, not when
    # the first visitor presses Upscale
    warm_default(studio)
    demo.launch(**launch_options())
