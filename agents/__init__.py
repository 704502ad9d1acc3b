"""The agent runtime: context compilation, the step loop, tools, tool rules, routes, LLM client,
scripted model."""

__all__: tuple[str, ...] = ()
