"""Views under test record what they would send to a browser (see tests/views)."""

from tests.views.conftest import comms

__all__ = ["comms"]
