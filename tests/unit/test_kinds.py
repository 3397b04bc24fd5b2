"""The kinds registry: built-ins, handler modules from configuration, payload validation."""

from __future__ import annotations

import pytest

from taskscheduler.core.errors import InvalidArgument
from taskscheduler.core.kinds import TaskContext, load_handler_modules
from taskscheduler.handlers.demo import EchoPayload, echo
from taskscheduler.settings import Settings


def test_builtin_kinds_are_registered() -> None:
    kinds = load_handler_modules()
    assert {"demo.sleep", "demo.echo", "demo.fail", "demo.gather"} <= set(kinds.names())


def test_handler_modules_named_by_the_setting_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKSCHED_HANDLER_MODULES", "tests.sample_handlers, ")
    settings = Settings()
    assert settings.handler_modules == ["tests.sample_handlers"]
    kind = load_handler_modules(settings.handler_modules).get("sample.greet")
    payload = kind.parse_payload({"name": "ada"})
    assert kind.handler(payload, TaskContext("id", 1, 1)) == "hello ada"


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match=r"demo\.echo") as excinfo:
        load_handler_modules().get("nope")
    assert excinfo.value.field == "kind"


def test_a_kind_cannot_be_registered_twice() -> None:
    kinds = load_handler_modules()
    with pytest.raises(ValueError, match="twice"):
        kinds.register("demo.echo", payload=EchoPayload)(echo)
