"""Control plane: CLI, REST API, YAML workflows, supervisor."""

__all__: tuple[str, ...] = ()
