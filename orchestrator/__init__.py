"""Control plane: CLI, REST API, router, tool-rule engine, workflows, supervisor."""

__all__: tuple[str, ...] = ()
