"""Helpers that start and drive real servers for the tests."""
