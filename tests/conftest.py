"""Suite-wide pytest setup: the `pytester` plugin, for testing our own pytest plugin."""

pytest_plugins = ["pytester"]
