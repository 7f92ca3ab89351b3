"""Helpers shared by the tests: imported from here, never from a conftest module."""
