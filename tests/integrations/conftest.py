"""Fixtures shared by the integration tests: an emulator named by the environment, a real Chroma
server (defined with the Chroma tests, where they began)."""

from tests.integrations.test_chroma import chroma_server, emulator, env  # noqa: F401
