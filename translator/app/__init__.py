"""The web app: ``service`` does the work without any Gradio in it, ``page`` builds the tabs and
API endpoints on top, and ``jobs``, ``workspace`` and ``archives`` keep its training run, its
folders and its uploaded datasets. Gradio is imported only when the page is asked for, so a
program that drives ``Studio`` alone never loads it."""

__all__ = ["Studio", "build_app", "launch_options", "warm_default"]


def __getattr__(name: str):
    if name == "Studio":
        from .service import Studio

        return Studio
    if name in ("build_app", "launch_options", "warm_default"):
        from . import page

        return getattr(page, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
