"""Tools for testing code that uses lnc-client: the pytest plugin (`pytest_plugin`).

The plugin is registered with pytest through the `pytest11` entry point, so installing
lnc-client is enough to get its fixtures (`lance_server`, `lance_client`, ...); see
docs/testing.md. This package sits above the client and the embedded server and may use both.
"""
