"""Fixtures of the CLI tests: the scripted model serving a memory policy, and the environment
a user's shell would have (see :mod:`tests.orchestrator._cli`)."""

from tests.orchestrator._cli import env, served

__all__ = ("env", "served")
