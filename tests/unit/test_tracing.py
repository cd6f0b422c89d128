"""LazyTracer creates the Powertools Tracer at the first traced call."""

from typing import Any

import pytest
from aws_lambda_powertools import Tracer

from handler.tracing import LazyTracer


@pytest.fixture(autouse=True)
def tracing_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")


def test_decorating_creates_no_tracer() -> None:
    tracer = LazyTracer()

    @tracer.capture_lambda_handler
    def handler(event: dict[str, Any], context: Any) -> str:
        return "done"

    @tracer.capture_method
    def helper(value: int) -> int:
        return value + 1

    assert tracer._tracer is None


def test_first_call_creates_tracer_once() -> None:
    tracer = LazyTracer()

    @tracer.capture_method
    def helper(value: int) -> int:
        return value + 1

    assert helper(1) == 2
    created = tracer._tracer
    assert isinstance(created, Tracer)
    assert helper(2) == 3
    assert tracer._tracer is created


def test_handler_result_and_name_are_kept() -> None:
    tracer = LazyTracer()

    @tracer.capture_lambda_handler
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"echo": event["value"]}

    assert lambda_handler({"value": 7}, None) == {"echo": 7}
    assert lambda_handler.__name__ == "lambda_handler"


def test_decorator_options_are_passed_on() -> None:
    tracer = LazyTracer()

    @tracer.capture_method(capture_response=False)
    def helper(value: int) -> int:
        return value * 2

    assert helper(4) == 8


def test_exceptions_propagate() -> None:
    tracer = LazyTracer()

    @tracer.capture_method
    def failing() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        failing()


def test_other_attributes_come_from_tracer() -> None:
    tracer = LazyTracer()

    # Disabled tracing makes put_annotation a no-op, but it must resolve.
    tracer.put_annotation("domain", "demo")

    assert isinstance(tracer._tracer, Tracer)
    assert tracer.disabled is True


def test_private_names_do_not_create_tracer() -> None:
    tracer = LazyTracer()

    with pytest.raises(AttributeError):
        tracer._not_defined  # noqa: B018

    assert tracer._tracer is None
