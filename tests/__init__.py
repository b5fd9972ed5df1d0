"""The test suite: `python -m pytest` (the fast tier: `-m "not slow"`)."""
