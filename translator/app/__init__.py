"""The web app: ``service`` does the work without any Gradio in it, ``page`` builds the tabs and
API endpoints on top, and ``jobs``, ``workspace`` and ``archives`` keep its training run, its
folders and its uploaded datasets."""

from .page import build_app, launch_options
from .service import Studio

__all__ = ["Studio", "build_app", "launch_options"]
