"""The agent runtime: context compilation, the step loop, tools, LLM client, scripted model."""

__all__: tuple[str, ...] = ()
