"""Tool schemas from signatures and docstrings, from live functions and from source code."""

from __future__ import annotations

import ast
import dataclasses
import enum
import itertools
import sys
import textwrap
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Optional, TypedDict, Union  # noqa: UP035

import msgspec
import pytest

from agents.tools import (
    DEFAULT_INJECTED,
    ToolSchema,
    ToolSchemaError,
    schema_from_function,
    schema_from_source,
    validate_arguments,
)


def _load(source: str, name: str | None = None) -> Any:
    """Execute trusted test source in a fresh module and return its (named or last) function.

    The module stays in ``sys.modules`` (under a fresh name), as msgspec and ``typing``
    resolve a class's annotations through it.
    """
    module = types.ModuleType(f"tool_under_test_{next(_MODULE_IDS)}")
    sys.modules[module.__name__] = module
    # dont_inherit: the source alone decides whether annotations are postponed.
    exec(compile(source, "<tool>", "exec", dont_inherit=True), module.__dict__)
    functions = [v for v in module.__dict__.values() if isinstance(v, types.FunctionType)]
    return module.__dict__[name] if name else functions[-1]


_MODULE_IDS = itertools.count()


def _both(source: str) -> ToolSchema:
    """The schema from source, after checking the live function gives the same one."""
    source = textwrap.dedent(source)
    from_source = schema_from_source(source)
    from_function = schema_from_function(_load(source))
    assert from_function.name == from_source.name
    assert from_function.description == from_source.description
    assert from_function.parameters == from_source.parameters
    return from_source


# --- the course's custom tools ------------------------------------------------------------

# The course's tool as the notebook defines it (tests/api/course: kept verbatim).
_COURSE = Path(__file__).parents[2] / "api" / "course" / "course_letta01.py"


def _course_function(name: str) -> str:
    """The source of the function ``name`` in the course's notebook."""
    source = _COURSE.read_text()
    [node] = [
        n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name
    ]
    segment = ast.get_source_segment(source, node)
    assert segment is not None
    return segment


TASK_QUEUE = _course_function("task_queue_push")


def test_task_queue_push_from_the_course() -> None:
    schema = _both(TASK_QUEUE)
    assert schema.json_schema() == {
        "name": "task_queue_push",
        "description": "Push to a task queue stored in core memory.",
        "parameters": {
            "type": "object",
            "properties": {
                "task_description": {
                    "type": "string",
                    "description": "A description of the next task you must accomplish.",
                }
            },
            "required": ["task_description"],
        },
    }
    assert schema.warnings == ()
    assert schema.to_openai() == {"type": "function", "function": schema.json_schema()}


def test_task_queue_pop_takes_no_arguments() -> None:
    schema = _both(
        '''
        def task_queue_pop(agent_state: "AgentState"):
            """
            Get the next task from the task queue

            Returns:
                Optional[str]: Remaining tasks in the queue
            """
            return None
        '''
    )
    assert schema.description == "Get the next task from the task queue"
    assert schema.parameters == {"type": "object", "properties": {}, "required": []}
    assert schema.warnings == ()


@pytest.mark.parametrize(
    ("source", "name", "argument", "summary", "about"),
    [
        (
            'def reject(candidate_name: str):\n    """\n    Reject a candidate.\n\n    Args:\n'
            '        candidate_name (str): The name of the candidate\n    """\n    return\n',
            "reject",
            "candidate_name",
            "Reject a candidate.",
            "The name of the candidate",
        ),
        (
            'def draft_candidate_email(content: str):\n    """\n    Draft an email to reach out '
            'to a candidate.\n\n    Args:\n        content (str): Content of the email\n    """\n'
            '    return f"Here is a draft email: {content}"\n',
            "draft_candidate_email",
            "content",
            "Draft an email to reach out to a candidate.",
            "Content of the email",
        ),
    ],
)
def test_recruiting_tools_from_the_course(
    source: str, name: str, argument: str, summary: str, about: str
) -> None:
    schema = _both(source)
    assert schema.name == name
    assert schema.description == summary
    assert schema.parameters == {
        "type": "object",
        "properties": {argument: {"type": "string", "description": about}},
        "required": [argument],
    }


def test_docstring_that_lost_its_indentation() -> None:
    """The course's text as published: every docstring line flush left."""
    source = (
        'def task_queue_push(agent_state: "AgentState", task_description: str):\n'
        '    """\nPush to a task queue stored in core memory.\nArgs:\n'
        "task_description (str): A description of the next task you must accomplish.\n"
        "Returns:\nOptional[str]: None is always returned as this function\n"
        'does not produce a response.\n"""\n    return None\n'
    )
    assert _both(source).parameters == _both(TASK_QUEUE).parameters


# --- types ---------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(msgspec.Struct, rename="camel"):
    """A point.

    Attributes:
        x_pos: Horizontal position.
    """

    x_pos: float
    label: Annotated[str, msgspec.Meta(description="What to call it.")] = ""


class Tree(msgspec.Struct):
    value: int
    children: list[Tree] = []


class Filters(TypedDict, total=False):
    tag: str
    limit: int


@dataclasses.dataclass
class Window:
    start: str
    days: int = 7


def typed_tool(
    name: str,
    count: int,
    ratio: float,
    flag: bool,
    mode: Literal["fast", "slow"],
    ids: list[int],
    tags: List[str],  # noqa: UP006
    scores: Sequence[float],
    meta: dict[str, int],
    loose: Dict[str, Any],  # noqa: UP006
    pair: tuple[int, str],
    many: tuple[str, ...],
    either: Union[int, str],  # noqa: UP007
    anything: Any,
    color: Color,
    level: Level,
    point: Point,
    tree: Tree,
    filters: Filters,
    window: Window,
    note: Annotated[str, "A note to keep."],
    maybe: Optional[str] = None,  # noqa: UP045
    other: int | None = None,
    limit: int = 10,
) -> str:
    """Exercise every supported type.

    Args:
        name: The name.
        count: How many.
        ratio: A ratio.
        flag: A flag.
        mode: How to run.
        ids: Ids.
        tags: Tags.
        scores: Scores.
        meta: Meta.
        loose: Loose.
        pair: Pair.
        many: Many.
        either: Either.
        anything: Anything.
        color: Color.
        level: Level.
        point: Point.
        tree: Tree.
        filters: Filters.
        window: Window.
        note: Overridden by this.
        maybe: Maybe.
        other: Other.
        limit: Limit.
    """
    return name


def _types(schema: ToolSchema) -> dict[str, Any]:
    return {
        key: {k: v for k, v in value.items() if k != "description"}
        for key, value in schema.parameters["properties"].items()
    }


def test_type_mapping_from_a_function() -> None:
    schema = schema_from_function(typed_tool)
    assert schema.warnings == ()
    props = _types(schema)
    assert props["name"] == {"type": "string"}
    assert props["count"] == {"type": "integer"}
    assert props["ratio"] == {"type": "number"}
    assert props["flag"] == {"type": "boolean"}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["scores"] == {"type": "array", "items": {"type": "number"}}
    assert props["meta"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["loose"] == {"type": "object"}
    assert props["pair"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    }
    assert props["many"] == {"type": "array", "items": {"type": "string"}}
    assert props["either"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert props["anything"] == {}
    assert props["color"] == {"type": "string", "enum": ["red", "green"]}
    assert props["level"] == {"type": "integer", "enum": [1, 2]}
    assert props["point"] == {
        "type": "object",
        "properties": {
            "xPos": {"type": "number", "description": "Horizontal position."},
            "label": {"type": "string", "description": "What to call it."},
        },
        "required": ["xPos"],
    }
    assert props["tree"]["properties"]["children"] == {
        "type": "array",
        "items": {"type": "object"},
    }
    assert props["filters"] == {
        "type": "object",
        "properties": {"tag": {"type": "string"}, "limit": {"type": "integer"}},
    }
    assert props["window"] == {
        "type": "object",
        "properties": {"start": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["start"],
    }
    assert props["maybe"] == {"type": "string"}
    assert props["other"] == {"type": "integer"}
    assert props["limit"] == {"type": "integer", "default": 10}
    assert schema.parameters["properties"]["note"]["description"] == "Overridden by this."
    assert schema.parameters["required"] == [
        name for name in props if name not in ("maybe", "other", "limit")
    ]


def test_annotated_description_used_when_args_is_silent() -> None:
    def note(text: Annotated[str, msgspec.Meta(description="The text.")]) -> None:
        """Take a note."""

    schema = schema_from_function(note)
    assert schema.parameters["properties"]["text"] == {"type": "string", "description": "The text."}


def test_type_mapping_from_source_matches_the_function() -> None:
    schema = _both(
        '''
        from __future__ import annotations
        import enum
        from typing import Any, Dict, List, Literal, Optional, TypedDict, Union
        import typing as t

        class Color(enum.Enum):
            RED = "red"
            GREEN = "green"

        class Filters(TypedDict, total=False):
            """Search filters.

            Attributes:
                tag: Only this tag.
            """
            tag: str
            limit: int

        def search(
            query: str,
            mode: Literal["fast", "slow"],
            ids: list[int],
            tags: t.List[str],
            meta: Dict[str, int],
            pair: tuple[int, str],
            either: Union[int, str],
            anything: Any,
            color: Color,
            filters: Filters,
            maybe: Optional[str] = None,
            other: int | None = None,
            limit: int = 10,
            *,
            exact: bool = False,
            scale: float = 1.5,
            order: tuple[str, ...] = ("a", "b"),
        ) -> list[str]:
            """Search things.

            Args:
                query: What to look for.
            """
            return []
        '''
    )
    props = _types(schema)
    assert props["color"] == {"type": "string", "enum": ["red", "green"]}
    assert props["filters"] == {
        "type": "object",
        "properties": {
            "tag": {"type": "string", "description": "Only this tag."},
            "limit": {"type": "integer"},
        },
    }
    assert props["exact"] == {"type": "boolean", "default": False}
    assert props["order"] == {"type": "array", "items": {"type": "string"}, "default": ["a", "b"]}
    assert schema.parameters["required"] == [
        "query", "mode", "ids", "tags", "meta", "pair", "either", "anything", "color", "filters"
    ]  # fmt: skip


def test_docstring_type_fills_in_a_missing_annotation() -> None:
    schema = _both(
        '''
        def remember(fact, count=1, extra=None):
            """Remember a fact.

            Args:
                fact (str): The fact.
                count (int, optional): How often. Defaults to 1.
                extra (Optional[List[str]]): Extra words.
            """
        '''
    )
    assert schema.parameters["properties"] == {
        "fact": {"type": "string", "description": "The fact."},
        "count": {"type": "integer", "description": "How often. Defaults to 1.", "default": 1},
        "extra": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Extra words.",
        },
    }
    assert schema.parameters["required"] == ["fact"]


def test_unresolvable_annotation_under_future_import_is_read_by_spelling() -> None:
    def push(agent_state: AgentState, items: list[int], thing: Unknown) -> None:  # type: ignore[name-defined]  # noqa: F821
        """Push items.

        Args:
            items: The items.
            thing: Something odd.
        """

    schema = schema_from_function(push)
    assert _types(schema) == {"items": {"type": "array", "items": {"type": "integer"}}, "thing": {}}
    assert any("Unknown" in warning for warning in schema.warnings)


def test_async_tools() -> None:
    schema = _both(
        '''
        async def fetch(url: str) -> str:
            """Fetch a page.

            Args:
                url: The address.
            """
            return url
        '''
    )
    assert schema.parameters["required"] == ["url"]


# --- injected parameters -----------------------------------------------------------------


def test_injected_parameters_are_left_out() -> None:
    source = '''
        def edit(self, ctx, agent_state, state: "agents.AgentState", label: str) -> str:
            """Edit a block.

            Args:
                agent_state: Supplied by the runtime, documenting it is fine.
                label: The block.
            """
            return label
        '''
    schema = _both(source)
    assert list(schema.parameters["properties"]) == ["label"]
    assert schema.warnings == ()
    assert frozenset({"agent_state", "self", "ctx"}) == DEFAULT_INJECTED


def test_custom_injected_set() -> None:
    def act(runtime: object, label: str) -> None:
        """Act.

        Args:
            label: The label.
        """

    schema = schema_from_function(act, injected={"runtime"})
    assert list(schema.parameters["properties"]) == ["label"]
    source = "def act(runtime, label: str):\n    pass\n"
    assert list(schema_from_source(source, injected={"runtime"}).parameters["properties"]) == [
        "label"
    ]


# --- warnings ------------------------------------------------------------------------------


def test_warnings_for_documentation_that_disagrees_with_the_signature() -> None:
    schema = _both(
        '''
        def send(to: str, body: str):
            """Send a letter.

            Arguments:
                to: The recipient.
                subject: Not a parameter.
            """
        '''
    )
    assert any("'body'" in w and "not documented" in w for w in schema.warnings)
    assert any("'subject'" in w and "not a parameter" in w for w in schema.warnings)
    assert schema.parameters["properties"]["body"] == {"type": "string"}


def test_no_docstring_gives_an_empty_description_and_a_warning() -> None:
    schema = _both("def bare(x: int):\n    return x\n")
    assert schema.description == ""
    assert len(schema.warnings) == 1
    assert "no docstring" in schema.warnings[0]


def test_summary_is_the_first_paragraph_normalised() -> None:
    schema = _both(
        '''
        def long(x: int):
            """Do   one thing
            across two lines.

            More detail that is not the summary.

            Parameters:
                x (int): First line
                    and its continuation.
            """
        '''
    )
    assert schema.description == "Do one thing across two lines."
    assert schema.parameters["properties"]["x"]["description"] == "First line and its continuation."


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["café", "x" * 65])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ToolSchemaError, match="rename the function"):
        schema_from_source(f"def {name}(a: int):\n    pass\n")


def test_lambda_is_refused() -> None:
    with pytest.raises(ToolSchemaError, match="'<lambda>'"):
        schema_from_function(lambda x: x)


@pytest.mark.parametrize(
    ("signature", "named"),
    [("a, *rest", r"\*rest"), ("a, **options", r"\*\*options"), ("a, /, b", "'a'.*positional")],
)
def test_signatures_a_model_cannot_call(signature: str, named: str) -> None:
    source = f"def tool({signature}):\n    pass\n"
    with pytest.raises(ToolSchemaError, match=named):
        schema_from_source(source)
    with pytest.raises(ToolSchemaError, match=named):
        schema_from_function(_load(source))


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ToolSchemaError, match="line 3") as caught:
        schema_from_source("def ok(a: str):\n    pass\ndef broken(:\n    pass\n")
    assert isinstance(caught.value, ValueError)


def test_source_picks_the_named_or_last_function() -> None:
    source = "def first(a: int):\n    pass\n\ndef second(b: str):\n    pass\n"
    assert schema_from_source(source).name == "second"
    assert schema_from_source(source, name="first").name == "first"
    with pytest.raises(ToolSchemaError, match=r"'third'.*first, second"):
        schema_from_source(source, name="third")
    with pytest.raises(ToolSchemaError, match="no top-level function"):
        schema_from_source("x = 1\n")


def test_source_is_never_executed() -> None:
    source = (
        "import module_that_does_not_exist\nraise SystemExit('ran')\n\n"
        "def tool(a: module_that_does_not_exist.Thing, b: str = 'x'):\n"
        '    """Do it.\n\n    Args:\n        a (str): A.\n        b: B.\n    """\n'
    )
    schema = schema_from_source(source)
    assert schema.parameters["properties"]["a"] == {"type": "string", "description": "A."}
    assert schema.parameters["required"] == ["a"]


# --- the schema object ---------------------------------------------------------------------


def test_schema_is_a_frozen_struct_that_round_trips() -> None:
    schema = schema_from_function(typed_tool)
    with pytest.raises(AttributeError):
        schema.name = "other"  # type: ignore[misc]
    decoded = msgspec.json.decode(msgspec.json.encode(schema), type=ToolSchema)
    assert decoded == schema
    copy = schema.json_schema()
    copy["parameters"]["properties"].clear()
    assert schema.parameters["properties"]


# --- argument validation -------------------------------------------------------------------


@pytest.fixture(name="schema")
def _schema() -> ToolSchema:
    return schema_from_function(typed_tool)


def _valid() -> dict[str, Any]:
    return {
        "name": "n",
        "count": 1,
        "ratio": 2,
        "flag": True,
        "mode": "fast",
        "ids": [1, 2],
        "tags": [],
        "scores": [1.5],
        "meta": {"a": 1},
        "loose": {"x": [1]},
        "pair": [1, "a"],
        "many": ["a"],
        "either": "s",
        "anything": None,
        "color": "red",
        "level": 2,
        "point": {"xPos": 1.0},
        "tree": {"value": 1, "children": [{"value": 2}]},
        "filters": {},
        "window": {"start": "monday"},
        "note": "hi",
        "maybe": None,
    }


def test_valid_arguments_pass(schema: ToolSchema) -> None:
    assert validate_arguments(schema, _valid()) == []


def test_missing_and_unknown_arguments(schema: ToolSchema) -> None:
    arguments = _valid()
    del arguments["count"]
    arguments["lmit"] = 3
    problems = validate_arguments(schema, arguments)
    assert problems == [
        "missing required argument 'count': send it as an integer (How many.)",
        "unknown argument 'lmit' (did you mean 'limit'?): typed_tool takes "
        + ", ".join(f"'{name}'" for name in schema.parameters["properties"]),
    ]


WRONG_VALUES = [
    ("count", "5", "argument 'count' must be an integer, not string \"5\"; send 5 without quotes"),
    ("count", True, "argument 'count' must be an integer, not boolean true"),
    ("count", 2.0, "argument 'count' must be an integer, not number 2.0; send 2"),
    (
        "flag",
        "true",
        "argument 'flag' must be true or false, not string \"true\"; send true without quotes",
    ),
    ("flag", 1, "argument 'flag' must be true or false, not integer 1"),
    (
        "ids",
        "[1]",
        "argument 'ids' must be a JSON array, not string \"[1]\"; "
        "send the JSON value itself, not a string holding JSON",
    ),
    (
        "ids",
        [1, "2"],
        "argument 'ids[1]' must be an integer, not string \"2\"; send 2 without quotes",
    ),
    ("mode", "medium", 'argument \'mode\' must be one of "fast", "slow"; got "medium"'),
    ("level", 3, "argument 'level' must be one of 1, 2; got 3"),
    ("meta", {"a": "x"}, "argument 'meta.a' must be an integer, not string \"x\""),
    ("either", 1.5, "argument 'either' must be an integer or a string, not number 1.5"),
    ("pair", [1], "argument 'pair' must be an array of exactly 2 items"),
    ("point", {}, "argument 'point' is missing its required field 'xPos'"),
    (
        "tree",
        {"value": 1, "children": ["x"]},
        "argument 'tree.children[0]' must be a JSON object, not string \"x\"",
    ),
    ("name", None, "argument 'name' must be a string, not null"),
]


@pytest.mark.parametrize(("name", "value", "message"), WRONG_VALUES)
def test_wrong_values_are_explained(
    schema: ToolSchema, name: str, value: object, message: str
) -> None:
    arguments = _valid() | {name: value}
    assert validate_arguments(schema, arguments) == [message]


def test_numbers_accept_integers_and_long_arrays_are_summarised(schema: ToolSchema) -> None:
    assert validate_arguments(schema, _valid() | {"ratio": 3, "scores": [1, 2.5]}) == []
    problems = validate_arguments(schema, _valid() | {"ids": ["x"] * 8})
    assert len(problems) == 6
    assert problems[-1] == "...and 3 more problems in 'ids'"


def test_arguments_must_be_an_object(schema: ToolSchema) -> None:
    assert validate_arguments(schema, ["a"]) == [  # type: ignore[arg-type]
        "the arguments of typed_tool must be a JSON object of named arguments, not a JSON array"
    ]
    empty = schema_from_source('def ping():\n    """Ping."""\n')
    assert validate_arguments(empty, {"x": 1}) == ["unknown argument 'x': ping takes no arguments"]


def test_more_shapes_agree_between_function_and_source() -> None:
    schema = _both(
        '''
        import dataclasses
        import datetime
        import enum
        import typing
        import uuid
        from typing import Annotated, ClassVar, Literal, NotRequired, Optional, Required

        import msgspec

        class Size(enum.IntEnum):
            S = 1
            M = 2

        class Options(typing.TypedDict, total=False):
            name: Required[str]
            size: Size
            note: NotRequired[str]

        class Node(msgspec.Struct):
            """A node.

            Attributes:
                value: Its value.
            """
            kind: ClassVar[str] = "node"
            value: int
            next: Optional["Node"] = None

        @dataclasses.dataclass
        class Span:
            start: datetime.datetime
            day: datetime.date
            ident: uuid.UUID
            weight: float = 1.0

        def shapes(
            labelled: Annotated[str, "A label."],
            meta: Annotated[int, msgspec.Meta(description="Meta.", ge=0)],
            unique: set[str],
            frozen: typing.FrozenSet[int],
            empty: tuple[()],
            bare_list: list,
            bare_dict: dict,
            bare_tuple: tuple,
            nothing: None,
            options: Options,
            node: Node,
            span: Span,
            flags: Literal[True, 1, "x", None],
            nested: dict[str, list[Optional[int]]],
        ):
            """Shapes."""
        '''
    )
    props = _types(schema)
    assert schema.parameters["properties"]["labelled"]["description"] == "A label."
    assert schema.parameters["properties"]["meta"] == {"type": "integer", "description": "Meta."}
    assert props["unique"] == {"type": "array", "items": {"type": "string"}}
    assert props["frozen"] == {"type": "array", "items": {"type": "integer"}}
    assert props["empty"] == props["bare_list"] == props["bare_tuple"] == {"type": "array"}
    assert props["bare_dict"] == {"type": "object"}
    assert props["nothing"] == {"type": "null"}
    assert props["options"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "size": {"type": "integer", "enum": [1, 2]},
            "note": {"type": "string"},
        },
        "required": ["name"],
    }
    assert props["node"] == {
        "type": "object",
        "properties": {
            "value": {"type": "integer", "description": "Its value."},
            "next": {"type": "object"},
        },
        "required": ["value"],
    }
    assert props["span"]["properties"] == {
        "start": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "ident": {"type": "string", "format": "uuid"},
        "weight": {"type": "number"},
    }
    assert props["flags"] == {"enum": [True, 1, "x"]}
    assert props["nested"] == {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "integer"}},
    }


def test_types_without_a_json_form_warn_and_accept_anything() -> None:
    source = textwrap.dedent(
        '''
        import enum
        from typing import Callable, Literal

        class Mode(enum.Enum):
            A = enum.auto()

        class Opaque:
            pass

        def odd(a: Opaque, b: Callable[[int], int], c: Mode, d: Literal[Mode.A], e: 3 + 4):
            """Odd.

            Args:
                a: A.
                b: B.
                c: C.
                d: D.
                e (list[int): E.
            """
        '''
    )
    schema = schema_from_source(source)
    assert all(value == {} for value in _types(schema).values())
    assert len(schema.warnings) == 6
    assert any("cannot read the type 'list[int'" in warning for warning in schema.warnings)
    live = schema_from_function(_load(source, "odd"))
    assert _types(live)["a"] == _types(live)["b"] == {}
    assert any("Opaque" in warning for warning in live.warnings)


def test_function_only_shapes() -> None:
    def who(user: UserId, when: Days = Days.MON, big: float = float("inf")) -> None:
        """Who.

        Args:
            user: The user.
            when: The day.
            big: No JSON default for infinity.
        """

    props = schema_from_function(who).parameters["properties"]
    assert props["user"]["type"] == "integer"
    assert props["when"]["default"] == "mon"
    assert "default" not in props["big"]


UserId = typing.NewType("UserId", int)


class Days(enum.StrEnum):
    MON = "mon"


def test_uninspectable_callables_are_refused() -> None:
    import functools

    with pytest.raises(ToolSchemaError, match="has no __name__"):
        schema_from_function(functools.partial(typed_tool, "x"))
    with pytest.raises(ToolSchemaError, match="cannot read the signature"):
        schema_from_function(type)


def test_docstring_sections_end_where_they_should() -> None:
    source = textwrap.dedent(
        '''
        def tidy(a: int, b=len([]), *, c: str = "x"):
            """Tidy up.

            Args:
                a: The a.
                b: The b,
                    which is computed.
            Trailing paragraph that is not part of b.

            Keyword Args:
                c (str): The c.

            Raises:
                d: Not an argument.
            """
        '''
    )
    schema = schema_from_source(source)
    props = schema.parameters["properties"]
    assert props["a"] == {"type": "integer", "description": "The a."}
    assert props["b"] == {"description": "The b, which is computed."}
    assert props["c"] == {"type": "string", "description": "The c.", "default": "x"}
    assert schema.parameters["required"] == ["a"]
    assert schema.warnings == ()
    # Only the live function knows what a computed default evaluates to.
    live = schema_from_function(_load(source))
    assert live.parameters["properties"]["b"]["default"] == 0


def test_validation_of_a_hand_written_schema() -> None:
    schema = ToolSchema(
        name="strict",
        description="",
        parameters={
            "type": "object",
            "properties": {
                "box": {
                    "type": "object",
                    "properties": {"w": {"type": ["integer", "null"]}},
                    "additionalProperties": False,
                },
            },
            "required": ["box"],
        },
    )
    assert validate_arguments(schema, {"box": {"w": None}}) == []
    assert validate_arguments(schema, {"box": {"w": "1", "h": 2}}) == [
        "argument 'box.w' must be an integer or null, not string \"1\"; send 1 without quotes",
        "argument 'box' has no field 'h'; its fields are w",
    ]
