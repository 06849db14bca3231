"""Calls constrained by a grammar built from each tool's JSON schema: whatever the schema,
Qwen2.5-Coder-0.5B's call parses and validates against it."""

from __future__ import annotations

import asyncio

import jsonschema
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from vllama.tool_calls import ToolCallParser, parse_tool_calls
from vllama.types import ChatRequest, Delta, Message, SamplingOptions, Tool, ToolFunction
from vllama_llamacpp.engine import LlamaCppEngine

scalar = st.sampled_from(
    [
        {"type": "string", "maxLength": 20},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "string", "enum": ["celsius", "fahrenheit"]},
        {"type": "string", "maxLength": 12},
        {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    ]
)
# Numeric bounds (minimum, maximum) are left out: llama-cpp-python's schema converter does not
# enforce them. Strings are bounded: a 0.5B model may repeat itself inside an unbounded string
# until num_predict cuts the call short, and a cut call is returned as text. Parallel calls are
# off, so the grammar allows exactly one call.
names = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)


@st.composite
def schemas(draw: st.DrawFn) -> dict:
    props = draw(
        st.dictionaries(
            names,
            scalar
            | st.builds(
                lambda p: {"type": "object", "properties": p, "required": list(p)}, st.dictionaries(names, scalar, min_size=1, max_size=2)
            ),
            min_size=1,
            max_size=3,
        )
    )
    required = draw(st.lists(st.sampled_from(sorted(props)), unique=True))
    return {"type": "object", "properties": props, "required": required}


async def call_of(engine: LlamaCppEngine, tool: Tool, choice: str, ask: str = "Call the tool with example values.") -> list:
    request = ChatRequest(
        messages=[Message(role="user", content=ask)],
        tools=[tool],
        tool_choice=choice,
        tool_format="hermes",
        parallel_tool_calls=False,
        options=SamplingOptions(temperature=0, num_predict=256),
    )
    events = parse_tool_calls(engine.chat(request), ToolCallParser("hermes", [tool.function.name]))
    return [c async for e in events if isinstance(e, Delta) for c in e.tool_calls]


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schema=schemas(), name=names)
def test_required_calls_validate_against_any_schema(qwen_engine: LlamaCppEngine, schema: dict, name: str) -> None:
    tool = Tool(function=ToolFunction(name=name, description="A tool.", parameters=schema))
    calls = asyncio.run(call_of(qwen_engine, tool, "required"))
    assert [c.function.name for c in calls] == [name]
    jsonschema.validate(calls[0].function.arguments, schema)


def test_a_lazy_grammar_constrains_the_call_the_model_opens(qwen_engine: LlamaCppEngine) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}
    tool = Tool(function=ToolFunction(name="forecast", description="Weather forecast for a city", parameters=schema))
    calls = asyncio.run(call_of(qwen_engine, tool, "auto", "What will the weather be in Paris for the next 3 days?"))
    assert [c.function.name for c in calls] == ["forecast"]
    jsonschema.validate(calls[0].function.arguments, schema)
