"""The built-in model families. Each is written as a third-party plugin would be."""
