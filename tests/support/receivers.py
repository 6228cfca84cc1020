"""What every receiver's tests check the same way: a routing file with one entry of a kind, config
errors at the position of what is wrong, the console stand-in while a secret's variable is unset,
and secrets kept out of the logs even at debug level.
"""

from __future__ import annotations

import io
import logging
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from alerting.notify.base import DeliveryError
from alerting.ops.logs import configure_logging
from alerting.worker.compose import check_routing_config, load_routing_config


def write_config(
    tmp_path: Path, configs: str, receiver: str, entry: str, global_section: str | None = None
) -> Path:
    """A routing file whose only receiver ``receiver`` has one ``configs`` entry (YAML ``entry``);
    with ``global_section`` it also has a ``global`` section holding it after ``resolve_timeout``."""
    body = textwrap.indent(textwrap.dedent(entry).strip(), "        ").lstrip()
    head = ""
    if global_section is not None:
        head = f"global:\n  resolve_timeout: 5m\n{textwrap.indent(global_section, '  ')}\n"
    path = tmp_path / "alerting.yml"
    path.write_text(
        f"{head}route:\n  receiver: {receiver}\nreceivers:\n  - name: {receiver}\n"
        f"    {configs}:\n      - {body}\n"
    )
    return path


def config_writer(configs: str, receiver: str, *, with_global: bool = False) -> Callable[..., Path]:
    """:func:`write_config` for one kind: ``write(tmp_path, entry)``, and with ``with_global``
    ``write(tmp_path, entry, global_section="")``."""

    def write(tmp_path: Path, entry: str, global_section: str = "") -> Path:
        return write_config(tmp_path, configs, receiver, entry, global_section if with_global else None)

    return write


def position_of(path: Path, marker: str) -> str:
    """``line:col`` of the first occurrence of ``marker`` in the file."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if marker in line:
            return f"{number}:{line.index(marker) + 1}"
    raise AssertionError(f"{marker!r} not in {path}")


def assert_rejected_at(path: Path, message: str, marker: str, *, column: bool = True) -> str:
    """The file's first problem says ``message`` at ``marker`` (its line, and column unless not
    ``column``); returns the problem's text."""
    problems = check_routing_config(path, env={})
    assert problems, path.read_text()
    text = str(problems[0])
    assert message in text
    if column:
        assert text.startswith(f"{path}:{position_of(path, marker)}: "), text
    else:
        line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if marker in t)
        assert text.startswith(f"{path}:{line}:"), text
    return text


def assert_console_until_set(
    path: Path,
    receiver: str,
    configs: str,
    variable: str,
    value: str,
    *,
    env: Mapping[str, str] | None = None,
    send_resolved: bool | None = True,
    quiet_when_set: bool = True,
) -> str:
    """With ``variable`` unset (``env`` holding the others) the entry is a console stand-in with a
    warning naming it; set to ``value`` it is the real integration. Returns the warning."""
    kind = configs.removesuffix("_configs")
    config = load_routing_config(path, env=dict(env or {}))
    (built,) = config.receivers[receiver].integrations
    assert built.kind == "console" and built.stands_for == configs
    if send_resolved is not None:
        assert built.send_resolved is send_resolved  # Alertmanager's default for the kind
    assert variable in config.warnings[0]
    live = load_routing_config(path, env={**(env or {}), variable: value})
    assert live.receivers[receiver].integrations[0].kind == kind
    if quiet_when_set:
        assert not live.warnings
    return str(config.warnings[0])


def debug_logs(action: Callable[[], Any]) -> str:
    """What the logs say, as JSON at debug level with httpx's own loggers on, while ``action`` runs."""
    stream = io.StringIO()
    root, libraries = logging.getLogger(), [logging.getLogger(n) for n in ("httpx", "httpcore")]
    saved = root.handlers[:], root.level, [lib.level for lib in libraries]
    configure_logging("DEBUG", "json", stream)
    try:
        action()
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for lib, level in zip(libraries, saved[2], strict=True):
            lib.setLevel(level)
    return stream.getvalue()


def assert_answer_classified(
    server: Any,
    send: Callable[[], Any],
    reply: Any,
    retryable: bool,
    retry_after: float | None,
    words: str,
    *secrets: str,
) -> str:
    """The service answering ``reply`` fails ``send`` with a DeliveryError that is ``retryable``
    (or not), waits ``retry_after``, says ``words`` and shows none of ``secrets``; returns its text."""
    server.fail_next(reply)
    with pytest.raises(DeliveryError) as failure:
        send()
    assert failure.value.retryable is retryable and failure.value.retry_after == retry_after
    text = str(failure.value)
    assert words in text
    for secret in secrets:
        assert secret not in text
    return text


def rejection_test(
    write: Callable[[Path, str], Path],
    cases: list[tuple[str, str, str]],
    *,
    column: bool = True,
    hidden: str = "",
    lines: Mapping[str, str] | None = None,
) -> Callable[..., None]:
    """A test that each ``(entry, message, marker)`` of ``cases`` is rejected saying ``message`` at
    ``marker``, the problem's wording (after its position) never showing ``hidden``. A marker in
    ``lines`` (one that is not unique) is checked by line only, at the line holding ``lines[marker]``."""

    @pytest.mark.parametrize(("entry", "message", "marker"), cases)
    def test(tmp_path: Path, entry: str, message: str, marker: str) -> None:
        path = write(tmp_path, entry)
        if lines and marker in lines:
            text = assert_rejected_at(path, message, lines[marker], column=False)
        else:
            text = assert_rejected_at(path, message, marker, column=column)
        if hidden:
            assert hidden not in text.split(": ", 1)[1]

    return test


def classification_test(
    fixture: str,
    send: Callable[[Any], Any],
    cases: list[tuple[Any, bool, float | None, str]],
    *secrets: str,
    server: Callable[[Any], Any] = lambda service: service,
) -> Callable[..., None]:
    """A test that the service (the fixture named ``fixture``, whose fake is ``server(service)``)
    answering each ``(reply, retryable, retry_after, words)`` of ``cases`` fails ``send(service)``
    as :func:`assert_answer_classified` checks, never showing ``secrets``."""

    @pytest.mark.parametrize(("reply", "retryable", "retry_after", "words"), cases)
    def test(
        request: pytest.FixtureRequest, reply: Any, retryable: bool, retry_after: float | None, words: str
    ) -> None:
        service = request.getfixturevalue(fixture)
        assert_answer_classified(
            server(service), lambda: send(service), reply, retryable, retry_after, words, *secrets
        )

    return test
