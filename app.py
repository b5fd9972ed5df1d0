"""Image translator: the web app. Run `python app.py`, or publish the repository as a Space."""

from translator.ui import build_app, launch_options

demo = build_app()

if __name__ == "__main__":
    demo.launch(**launch_options())
