"""Errors of the scripted model.

::

    ScriptedModelError (MemgridError)
    ├── SequenceExhausted   UserError   a sequence() policy was asked for more replies than
    │                                   it holds
    └── PolicyFailed        UserError   a policy raised; the server answered 500 and kept
                                        the error
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.errors import MemgridError, UserError

__all__ = ("PolicyFailed", "ScriptedModelError", "SequenceExhausted")


class ScriptedModelError(MemgridError):
    """Base of the scripted model's errors."""


class SequenceExhausted(ScriptedModelError, UserError):
    """A :func:`~agents.scripted.policies.sequence` ran out of replies."""


class PolicyFailed(ScriptedModelError, UserError):
    """Policies raised while serving: a bug in the test's script, reported at teardown."""

    def __init__(self, errors: Sequence[BaseException]) -> None:
        self.errors = tuple(errors)
        listed = "; ".join(f"{type(e).__name__}: {e}" for e in self.errors)
        super().__init__(
            f"the scripted model's policy raised {len(self.errors)} time(s): {listed} "
            "(clear model.policy_errors if the test expects it)"
        )
