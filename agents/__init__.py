"""The agent runtime: context compilation, the step loop, tools, tool rules, routes, LLM client,
scripted model.

Errors, under memgrid's root (:mod:`storage.errors`)::

    MemgridError
    ├── UserError
    │   ├── LLMRejected            the endpoint refused the key, the model, or none is set
    │   ├── ContextOverflow        nothing left to evict and the request still does not fit
    │   ├── MessageTooLarge        (InvalidRecord) over the size limit (agents.limits)
    │   ├── MessageTooLong         (InvalidRecord) can never fit the context window
    │   ├── ToolSchemaError        (ValueError) a function cannot become a tool
    │   ├── ToolEnvError           a tool's pip environment could not be built
    │   ├── SequenceExhausted      a scripted sequence() ran out (ScriptedModelError)
    │   └── PolicyFailed           a scripted policy raised (ScriptedModelError)
    ├── RuntimeFailure
    │   ├── LLMUnavailable         retries spent on 429 / 5xx / timeouts (LLMError)
    │   ├── LLMInvalidResponse     retries spent on answers that are not completions
    │   ├── ContextWindowExceeded  the provider says the prompt is too long: compact, retry
    │   ├── Unparsable             one answer that is not a completion (retried)
    │   └── ArchivalUnavailable    no process answered for the embedded passage engine
    └── ControlSignal
        ├── ToolError              a refusal the model reads as the tool's result
        ├── AwaitReplies           a tool asks to wait for replies (agents.messaging)
        ├── Suspended              the run waits for other agents (agents._turn)
        └── Preempted              the worker stops: resume the run elsewhere

``LLMError`` and ``ScriptedModelError`` are the bases of the model's and the scripted model's
errors; they have no kind of their own.
"""

__all__: tuple[str, ...] = ()
