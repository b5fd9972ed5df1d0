"""The built-in model families, installed as ``translator.default_plugins``. Each is written as a
third-party plugin would be, with only the public API."""
