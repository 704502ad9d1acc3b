"""Control plane: CLI, REST API, YAML workflows, supervisor.

Its errors are all ``UserError`` (memgrid's root: :mod:`storage.errors`): ``ApiError`` (a 4xx
naming the field), ``ApiSettingsError`` (an API setting that cannot be used),
``WorkflowError`` (a workflow file that cannot be applied) and ``UsageError`` (the CLI's one
line, exit 2). Its entry points catch kinds, not lists: the CLI turns any ``UserError`` or
``RuntimeFailure`` into one line, the API answers 400 / 503 for those it has no closer
mapping for.

The Python API (``from orchestrator import open_runtime, apply_workflow, ...``) is ``__all__``
below; the agent side (``AgentSpec``, ``create_agent``, ``RunStore``...) is in :mod:`agents`.
A script's helpers (``model_or_stand_in``, ``recreate_agent``, ``send``) are in
:mod:`orchestrator.scripting`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bus._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:  # the same names, seen by type checkers; at run time they load on first use
    from orchestrator.api import ApiError, ApiSettings, create_app
    from orchestrator.apply import Applied, apply_workflow
    from orchestrator.bootstrap import open_runtime
    from orchestrator.logs import configure_logging
    from orchestrator.render import print_event
    from orchestrator.scripting import ModelChoice, model_or_stand_in, recreate_agent, send
    from orchestrator.shared_archival import SharedArchival
    from orchestrator.supervisor import run_supervised, supervise
    from orchestrator.workflow import Workflow, WorkflowError, load_workflow
    from orchestrator.workflow_inputs import RunReport, run_inputs

__all__ = (
    "ApiError",
    "ApiSettings",
    "Applied",
    "ModelChoice",
    "RunReport",
    "SharedArchival",
    "Workflow",
    "WorkflowError",
    "apply_workflow",
    "configure_logging",
    "create_app",
    "load_workflow",
    "model_or_stand_in",
    "open_runtime",
    "print_event",
    "recreate_agent",
    "run_inputs",
    "run_supervised",
    "send",
    "supervise",
)

# Importing orchestrator stays cheap (the CLI's --help imports it): a name's module loads when the
# name is first used, from where the TYPE_CHECKING block above imports it.
__getattr__, __dir__ = _lazy_exports(globals())
