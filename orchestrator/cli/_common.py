"""Helpers shared by CLI commands."""

from __future__ import annotations

__all__ = ("UsageError",)


class UsageError(Exception):
    """A user mistake: printed as one line, exit code 2."""
