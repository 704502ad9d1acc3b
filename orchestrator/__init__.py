"""Control plane: CLI, REST API, YAML workflows, supervisor.

Its errors are all ``UserError`` (memgrid's root: :mod:`storage.errors`): ``ApiError`` (a 4xx
naming the field), ``ApiSettingsError`` (an API setting that cannot be used),
``WorkflowError`` (a workflow file that cannot be applied) and ``UsageError`` (the CLI's one
line, exit 2). Its entry points catch kinds, not lists: the CLI turns any ``UserError`` or
``RuntimeFailure`` into one line, the API answers 400 / 503 for those it has no closer
mapping for.
"""

__all__: tuple[str, ...] = ()
