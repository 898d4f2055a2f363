from tests.support.triton_stub import triton_server  # noqa: F401  (the fixture, for this package)
