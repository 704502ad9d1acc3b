"""The tool-rule engine: Letta's tool rules, checked when an agent is created and enforced at
every step through the :class:`agents.gate.ToolGate` seam.

:class:`RuleGate` answers the step loop's questions from the agent's ``tool_rules``:

- ``run_first``: until a tool has run in this turn, only the run_first tools are offered (all
  of them when there are several, as in Letta) and the turn may not end; their ``args``
  override the model's arguments (:meth:`RuleGate.preset_args`).
- ``exit_loop``: calling the tool ends the turn.
- ``continue_loop``: after calling the tool the turn goes on.
- ``constrain_child_tools``: right after the tool only its children may be called; the turn
  goes on.
- ``parent_last_tool``: the gated tool may be called only right after one of its parents.
- ``conditional``: right after the tool its output picks the next tool: the mapped child, else
  ``default_child``, else any tool (with ``require_output_mapping``: only the exit tools); the
  turn goes on.
- ``max_count_per_step``: the tool may run at most N times per turn (Letta's "step" is one
  request, not one model call).
- ``required_before_exit``: the turn may not end until the tool ran.
- ``requires_approval``: a call waits for a person's approval (:meth:`RuleGate.needs_approval`).

Rules combine by intersection. When nothing is left, the gate offers the *exit tools* instead
(required-before-exit tools not yet called, exit_loop tools, ``send_message``), so the model is
never left with nothing to call. A call outside the offered set is refused with a tool error
that says which rule forbids it and what may be called instead.

Conditional outputs are compared with the tool's own output text (not the loop's JSON
wrapper), stripped; ``true``/``false`` match case-insensitively and numbers by value
(``"1"`` matches ``1.0``), as Letta's typed keys do.

Nothing here raises: :func:`validate_rules` returns the problems it finds as sentences that
name the rule's index and field.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from agents.gate import Decision, TurnState
from agents.tools.registry import TERMINAL_TOOLS
from storage.records import (
    Agent,
    Conditional,
    ConstrainChildTools,
    ContinueLoop,
    ExitLoop,
    MaxCountPerStep,
    ParentLastTool,
    RequiredBeforeExit,
    RequiresApproval,
    RunFirst,
    ToolRule,
)

__all__ = ("RuleGate", "render_rules", "validate_rules")


def _either(names: Collection[str]) -> str:
    quoted = sorted(dict.fromkeys(names))
    if len(quoted) == 1:
        return quoted[0]
    return "one of " + ", ".join(quoted)


def _parent_gates(rules: Sequence[ToolRule]) -> dict[str, frozenset[str]]:
    """Each gated tool with the tools that must have run right before it.

    As in Letta's JSON, a rule's ``tool_name`` is the parent and ``children`` the tools it
    gates. Several rules gating one tool add up (any of their parents will do).
    """
    gates: dict[str, frozenset[str]] = {}
    for rule in rules:
        if isinstance(rule, ParentLastTool):
            for child in rule.children:
                gates[child] = gates.get(child, frozenset()) | {rule.tool_name}
    return gates


def _scalar(text: str) -> bool | float | str:
    value = text.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return float(value)
    except ValueError:
        return value


def _matches(output: str, key: str) -> bool:
    out, want = _scalar(output), _scalar(key)
    return type(out) is type(want) and out == want


def _conditional_next(rule: Conditional, output: str | None) -> tuple[frozenset[str] | None, str]:
    """The tools allowed right after ``rule.tool_name`` returned ``output`` (None: any)."""
    name = rule.tool_name
    if output is None:  # a resumed turn does not know the output: any branch will do
        branches = {*rule.child_output_mapping.values(), *filter(None, [rule.default_child])}
        if not branches:
            return None, ""
        return frozenset(branches), f"after {name} the next tool must be {_either(branches)}"
    for key, child in rule.child_output_mapping.items():
        if _matches(output, key):
            return frozenset({child}), f"{name} returned {output.strip()!r}, so {child} is next"
    if rule.default_child is not None:
        child = rule.default_child
        return frozenset({child}), (
            f"{name} returned {output.strip()!r}, which no case maps, so {child} is next"
        )
    if rule.require_output_mapping:
        cases = ", ".join(repr(k) for k in rule.child_output_mapping)
        return frozenset(), (
            f"{name} returned {output.strip()!r}, which is none of its expected outputs "
            f"({cases}), so no tool may follow it"
        )
    return None, ""


def _reasons(rules: Sequence[ToolRule], state: TurnState, name: str) -> list[str]:
    """Why ``name`` may not be called now ([] when it may)."""
    last = state.calls[-1] if state.calls else None
    reasons: list[str] = []
    first = [r.tool_name for r in rules if isinstance(r, RunFirst)]
    if first and not state.calls and name not in first:
        reasons.append(f"every turn must start with {_either(first)}")
    for rule in rules:
        if isinstance(rule, ConstrainChildTools):
            if rule.tool_name == last and name not in rule.children:
                reasons.append(f"after {last} you must call {_either(rule.children)}")
        elif isinstance(rule, Conditional):
            if rule.tool_name == last:
                allowed, why = _conditional_next(rule, state.last_output)
                if allowed is not None and name not in allowed:
                    reasons.append(why)
        elif isinstance(rule, MaxCountPerStep) and rule.tool_name == name:
            count = state.calls.count(name)
            if count >= rule.max_count_limit:
                reasons.append(
                    f"{name} may run at most {rule.max_count_limit} time(s) per turn and "
                    f"already ran {count} time(s)"
                )
    parents = _parent_gates(rules).get(name)
    if parents is not None and last not in parents:
        after = f"right after {last}" if last else "before any other tool"
        reasons.append(f"{name} may only be called right after {_either(parents)}, not {after}")
    return reasons


def _names(rules: Sequence[ToolRule], kind: type[Any]) -> list[str]:
    return list(dict.fromkeys(r.tool_name for r in rules if isinstance(r, kind)))


class RuleGate:
    """The tool-rule engine as the step loop's :class:`~agents.gate.ToolGate`.

    Stateless: everything it decides on is in the agent record and the turn's
    :class:`~agents.gate.TurnState`, so one instance serves every agent of a worker.

    Args:
        exit_tools: tools that end a turn by themselves, offered when the rules leave nothing.
    """

    def __init__(self, exit_tools: Collection[str] = TERMINAL_TOOLS) -> None:
        self._exit_tools = frozenset(exit_tools)

    def prompt(self, agent: Agent) -> str:
        """The ``<tool_rules>`` section of the system prompt ("" without rules)."""
        return render_rules(agent.tool_rules)

    def offered(self, agent: Agent, state: TurnState, names: Sequence[str]) -> list[str]:
        """The tools of ``names`` the rules allow next, in their order; never empty when an
        exit tool exists."""
        rules = agent.tool_rules
        if not rules:
            return list(names)
        allowed = [n for n in names if not _reasons(rules, state, n)]
        return allowed or self._fallback(rules, state, names)

    def refuse(self, agent: Agent, state: TurnState, name: str) -> str | None:
        """The tool error for calling ``name`` now, or None when the rules allow it."""
        reasons = _reasons(agent.tool_rules, state, name)
        if not reasons:
            return None
        allowed = self.offered(agent, state, agent.tools)
        if name in allowed:  # everything was forbidden and this is an exit tool
            return None
        choice = ", ".join(allowed) if allowed else "none: end your turn with a plain answer"
        return (
            f"{name} may not be called now: {'; '.join(reasons)}. Tools you may call now: {choice}."
        )

    def after(self, agent: Agent, state: TurnState, name: str) -> Decision | None:
        """``end`` for an exit_loop tool, ``continue`` for a continue_loop tool or one whose
        rules pick the next tool (children, conditional), else None (the loop decides)."""
        rules = agent.tool_rules
        if name in _names(rules, ExitLoop):
            return "end"
        if name in _names(rules, ContinueLoop):
            return "continue"
        if name in _names(rules, ConstrainChildTools) or name in _names(rules, Conditional):
            return "continue"
        return None

    def may_end(self, agent: Agent, state: TurnState) -> str | None:
        """Why the turn may not end yet: no run_first tool ran, or a required tool did not."""
        rules, problems = agent.tool_rules, []
        first = [n for n in _names(rules, RunFirst) if n in agent.tools]
        if first and not state.calls:
            problems.append(f"Call {_either(first)} first: every turn starts with it.")
        missing = [
            n
            for n in _names(rules, RequiredBeforeExit)
            if n in agent.tools and n not in state.calls
        ]
        if missing:
            problems.append(f"You must call {', '.join(missing)} before ending your turn.")
        return " ".join(problems) or None

    def preset_args(self, agent: Agent, state: TurnState, name: str) -> dict[str, Any]:
        """Arguments that override the model's for a call of ``name`` (run_first ``args``).

        As in Letta they apply to every call of the tool, and they win over the model's
        values for the same keys; other arguments are left to the model.
        """
        preset: dict[str, Any] = {}
        for rule in agent.tool_rules:
            if isinstance(rule, RunFirst) and rule.tool_name == name and rule.args:
                preset.update(rule.args)
        return preset

    def needs_approval(self, agent: Agent, state: TurnState, name: str) -> bool:
        """Whether a call of ``name`` must wait for a person's approval before it runs."""
        return name in _names(agent.tool_rules, RequiresApproval)

    def check(self, tool_rules: Sequence[ToolRule], tool_names: Collection[str]) -> list[str]:
        """Problems with ``tool_rules`` for an agent with ``tool_names`` (see
        :func:`validate_rules`); for agent creation once the seam asks for it."""
        return validate_rules(tool_rules, tool_names)

    def _fallback(
        self, rules: Sequence[ToolRule], state: TurnState, names: Sequence[str]
    ) -> list[str]:
        required = {n for n in _names(rules, RequiredBeforeExit) if n not in state.calls}
        exits = required | set(_names(rules, ExitLoop)) | self._exit_tools
        return [n for n in names if n in exits]


def render_rules(rules: Sequence[ToolRule]) -> str:
    """The rules in plain words inside ``<tool_rules>``; "" when there are none."""
    lines = [f"- {_describe(rule)}" for rule in rules]
    if not lines:
        return ""
    head = "Rules for your tool calls (a call that breaks one is refused with an error):"
    return "\n".join(["<tool_rules>", head, *lines, "</tool_rules>"])


def _describe(rule: ToolRule) -> str:
    name = rule.tool_name
    match rule:
        case RunFirst(args=args):
            preset = f" (with {', '.join(f'{k}={v!r}' for k, v in args.items())})" if args else ""
            return f"Call {name}{preset} first in every turn, before any other tool."
        case ExitLoop():
            return f"Calling {name} ends your turn."
        case ContinueLoop():
            return f"After calling {name} your turn goes on: you get another step."
        case ConstrainChildTools(children=children):
            return f"Right after {name}, you must call {_either(children)}."
        case ParentLastTool(children=children):
            return f"{_either(children)} may only be called right after {name}."
        case Conditional():
            cases = [f"{k!r} → {v}" for k, v in rule.child_output_mapping.items()]
            if rule.default_child is not None:
                other = f"any other output → {rule.default_child}"
            elif rule.require_output_mapping:
                other = "any other output → no tool may follow"
            else:
                other = "any other output → any tool"
            return f"Right after {name}, its output decides the next tool: " + "; ".join(
                [*cases, other]
            )
        case MaxCountPerStep(max_count_limit=limit):
            return f"Call {name} at most {limit} time(s) per turn."
        case RequiredBeforeExit():
            return f"You must call {name} before you end your turn."
        case RequiresApproval():
            return f"{name} needs a person's approval: the run pauses until they decide."
    raise AssertionError(f"unhandled tool rule {rule!r}")  # pragma: no cover


def validate_rules(
    tool_rules: Sequence[ToolRule],
    tool_names: Collection[str],
    *,
    parameters: Mapping[str, Collection[str]] | None = None,
) -> list[str]:
    """Problems with ``tool_rules`` for an agent with the tools ``tool_names``.

    Args:
        tool_rules: the rules, in the agent's order (problems name ``tool_rules[i].field``).
        tool_names: every tool the agent has.
        parameters: each tool's parameter names, to check run_first ``args``; skipped when None.

    Returns:
        One sentence per problem; [] when the rules are sound.
    """
    known = ", ".join(sorted(tool_names)) or "none"
    problems: list[str] = []

    def check(index: int, field: str, names: Collection[str]) -> None:
        for name in names:
            if name not in tool_names:
                problems.append(
                    f"tool_rules[{index}].{field}: unknown tool {name!r}; the agent's tools are: "
                    f"{known}"
                )

    kinds: dict[str, dict[str, int]] = {}
    for i, rule in enumerate(tool_rules):
        check(i, "tool_name", [rule.tool_name])
        seen = kinds.setdefault(rule.tool_name, {})
        kind = type(rule).__name__
        if kind in seen and kind in ("Conditional", "RunFirst", "MaxCountPerStep"):
            problems.append(
                f"tool_rules[{i}]: a second {rule.__struct_config__.tag} rule for "
                f"{rule.tool_name!r} (tool_rules[{seen[kind]}]); merge them into one"
            )
        seen.setdefault(kind, i)
        match rule:
            case ConstrainChildTools(children=children):
                if not children:
                    problems.append(f"tool_rules[{i}].children: empty; name at least one tool")
                check(i, "children", children)
            case ParentLastTool(children=children):
                if not children:
                    problems.append(f"tool_rules[{i}].children: empty; name at least one tool")
                check(i, "children", children)
            case Conditional(child_output_mapping=mapping, default_child=default):
                if not mapping:
                    problems.append(
                        f"tool_rules[{i}].child_output_mapping: empty; map at least one output "
                        "to a tool"
                    )
                check(i, "child_output_mapping", list(mapping.values()))
                if default is not None:
                    check(i, "default_child", [default])
            case MaxCountPerStep(max_count_limit=limit):
                if limit < 1:
                    problems.append(
                        f"tool_rules[{i}].max_count_limit: {limit}; it must be 1 or more "
                        "(remove the tool from the agent to forbid it)"
                    )
            case RunFirst(args=args):
                known_args = (parameters or {}).get(rule.tool_name)
                if args and known_args is not None:
                    extra = sorted(set(args) - set(known_args))
                    if extra:
                        problems.append(
                            f"tool_rules[{i}].args: {rule.tool_name} has no parameter(s) {extra}"
                        )
    problems += _conflicts(tool_rules)
    return problems


def _conflicts(rules: Sequence[ToolRule]) -> list[str]:
    problems: list[str] = []
    exits, continues = set(_names(rules, ExitLoop)), set(_names(rules, ContinueLoop))
    for name in sorted(exits & continues):
        problems.append(f"tool_rules: {name!r} is both exit_loop and continue_loop; keep one")
    gates = _parent_gates(rules)
    for i, rule in enumerate(rules):
        if isinstance(rule, RunFirst) and rule.tool_name in gates:
            problems.append(
                f"tool_rules[{i}].tool_name: {rule.tool_name!r} must run first but a "
                "parent_last_tool rule lets it run only after another tool, so it never could"
            )
    return problems
