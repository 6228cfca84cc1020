"""Go's text/template with Prometheus's functions, for annotations, labels and notifications.

An interpreter, not a substitution: :mod:`.lexer` scans, :mod:`.parser` builds a tree, :mod:`.exec`
walks it within the bounds of :mod:`.options`, calling :mod:`.funcs`; Go's formatting lives where Go
keeps it, numbers and quoting in :mod:`.strconv` and printing in :mod:`.fmt`, over the value model of
:mod:`.values`. Output, error messages and their positions are Prometheus's, byte for byte, so an
annotation reads the same here as in Prometheus.

Public surface:

- :func:`check` — load-time syntax check of an annotation or label template (raises TemplateError);
- :func:`expand_alert` — render for one alert exactly as a Prometheus rule does; never raises;
- :func:`render` — the general entry point over any data model (notification templates);
- :func:`go_float` — Go's ``%v`` of a float64; :func:`render_for_cli` for ``alerting render``;
- the data model templates read (:class:`AlertData`, :class:`GoMap`, :class:`GoStruct`,
  :class:`Sample`), what an execution is given (:class:`Limits`, :class:`Env`, :data:`QueryFn`),
  extra functions (:class:`Func`), and :data:`ALERT_PREFIX`, the declarations Prometheus prepends.

The modules are the implementation; :mod:`.strconv` and :mod:`.fmt` are also Go's primitives for
code that must print as Prometheus and Alertmanager do (matchers quote label values with them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from alerting.errors import TemplateError
from alerting.templating.exec import ExecError, State
from alerting.templating.fmt import go_float
from alerting.templating.funcs import ANY, DEFAULT_FUNCS, Func
from alerting.templating.options import Env, Limits
from alerting.templating.parser import (
    ActionNode,
    FieldNode,
    ParseError,
    TextNode,
    Tree,
    VariableNode,
    parse,
)
from alerting.templating.values import AlertData, GoMap, GoStruct, Sample

__all__ = [
    "ALERT_PREFIX",
    "AlertData",
    "Env",
    "Func",
    "GoMap",
    "GoStruct",
    "Limits",
    "QueryFn",
    "Sample",
    "check",
    "expand_alert",
    "go_float",
    "parse_error_text",
    "render",
    "render_for_cli",
]

QueryFn = Callable[[str], Sequence[Any]]
_LIMITS = Limits()

# Prometheus prepends these to every rule annotation and label template (on the template's first line).
ALERT_PREFIX = (
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
    "{{$externalURL := .ExternalURL}}{{$value := .Value}}"
)


def _position(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column (in characters) of offset ``pos``."""
    line = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    return line, pos - start + 1


def _func_table(funcs: Mapping[str, Func | Callable[..., Any]] | None) -> dict[str, Func]:
    if not funcs:
        return DEFAULT_FUNCS
    table = dict(DEFAULT_FUNCS)
    for name, fn in funcs.items():
        if isinstance(fn, Func):
            table[name] = fn
        else:
            # A plain Python callable takes any number of arguments of any type.
            table[name] = Func(name, lambda _s, *a, _fn=fn: _fn(*a), (), ANY)
    return table


@functools.lru_cache(maxsize=4096)
def _compile(name: str, text: str, func_names: frozenset[str]) -> dict[str, Tree] | ParseError:
    # Cached per text: rules render the same annotations every tick. Errors are cached too.
    return _parse_or_error(name, text, func_names)


def _parse_or_error(name: str, text: str, func_names: frozenset[str]) -> dict[str, Tree] | ParseError:
    try:
        return parse(name, text, func_names)
    except ParseError as exc:
        return exc


# The prefix's variables, and the data field each is bound to, in the order ALERT_PREFIX declares them.
_PREFIX_VARS = (
    ("$labels", "Labels"),
    ("$externalLabels", "ExternalLabels"),
    ("$externalURL", "ExternalURL"),
    ("$value", "Value"),
)
# A plan is what a template without logic writes, in order: literal text, a label of the sample, the
# value, or the external URL.
_TEXT, _LABEL, _VALUE, _URL = range(4)
_Plan = tuple[tuple[int, str], ...]


_PLAN_NAME = "__alert_"


def _alert_plan(full: str) -> _Plan | None:
    """The plan of an alert template made only of text, ``{{ $labels.x }}``, ``{{ $value }}`` and
    ``{{ $externalURL }}`` (or their ``.Labels.x``/``.Value``/``.ExternalURL`` spelling); None for any
    other template, which the interpreter runs.

    Most annotations look like this, and walking them costs far more than writing them: the plan
    writes exactly what the interpreter would (a label value as is, the value through Go's %v).

    Keyed by the text alone: the template's name (``__alert_`` + alert name) only shows in error
    messages, and a template with an error never gets a plan. Rule packs repeat the same annotation
    across many alerts, so thousands of rules share a handful of plans."""
    result = _compile(_PLAN_NAME, full, frozenset(DEFAULT_FUNCS))
    if isinstance(result, ParseError) or len(result) != 1:
        return None
    root = result[_PLAN_NAME].root
    if root is None or len(root.nodes) < len(_PREFIX_VARS):
        return None
    for node, (var, field) in zip(root.nodes, _PREFIX_VARS, strict=False):
        if not (
            isinstance(node, ActionNode)
            and not node.pipe.is_assign
            and [d.ident for d in node.pipe.decl] == [(var,)]
            and _single_arg(node) == ("field", (field,))
        ):
            return None
    plan: list[tuple[int, str]] = []
    for node in root.nodes[len(_PREFIX_VARS) :]:
        if isinstance(node, TextNode):
            plan.append((_TEXT, node.text))
            continue
        if not isinstance(node, ActionNode) or node.pipe.decl:
            return None
        arg = _single_arg(node)
        if arg in (("var", ("$value",)), ("field", ("Value",))):
            plan.append((_VALUE, ""))
        elif arg in (("var", ("$externalURL",)), ("field", ("ExternalURL",))):
            plan.append((_URL, ""))
        elif arg is not None and len(arg[1]) == 2 and arg[1][0] in ("$labels", "Labels"):
            plan.append((_LABEL, arg[1][1]))
        else:
            return None
    return tuple(plan)


@functools.lru_cache(maxsize=4096)
def _text_plan(text: str) -> _Plan | None:
    """The plan of annotation or label ``text`` (see _alert_plan), found by the text itself: the
    rule's own string, whose hash Python keeps, rather than the prefixed copy made per alert."""
    return _alert_plan(ALERT_PREFIX + text)


def _single_arg(node: ActionNode) -> tuple[str, tuple[str, ...]] | None:
    """("var" or "field", identifiers) when the action's pipeline is one bare variable or field."""
    cmds = node.pipe.cmds
    if len(cmds) != 1 or len(cmds[0].args) != 1:
        return None
    arg = cmds[0].args[0]
    if isinstance(arg, VariableNode):
        return "var", tuple(arg.ident)
    if isinstance(arg, FieldNode):
        return "field", tuple(arg.ident)
    return None


def _run_plan(
    plan: _Plan, labels: Mapping[str, str], value: float, external_url: str, limit: int
) -> str | None:
    """The plan's output, or None when the interpreter must run instead (to produce its error)."""
    out = []
    for kind, arg in plan:
        if kind == _TEXT:
            out.append(arg)
        elif kind == _LABEL:
            # Prometheus's missingkey=zero: an absent label prints as "".
            text = labels.get(arg, "")
            if type(text) is not str:
                return None
            out.append(text)
        elif kind == _VALUE:
            out.append(go_float(value))
        else:
            out.append(external_url)
    text = "".join(out)
    return text if len(text) <= limit else None


def _parse_error(name: str, exc: ParseError) -> str:
    return f"template: {name}:{exc.line}: {exc.message}"


def check(text: str, *, alertname: str = "") -> None:
    """Raise :class:`TemplateError` (with 1-based line and column in ``text``) if it does not parse
    as a Prometheus alert template (``$labels``, ``$value``, ``$externalLabels``, ``$externalURL``
    are declared, as Prometheus declares them). The message is Go's; :func:`parse_error_text` gives
    the full line Prometheus prints."""
    full = ALERT_PREFIX + text
    # Not through the cache: each rule's name makes its own entry, and a worker loading 10,000
    # rules kept 4,096 parsed trees only to have checked them once.
    result = _parse_or_error("__alert_" + alertname, full, frozenset(DEFAULT_FUNCS))
    if isinstance(result, ParseError):
        pos_line, col = _position(full, result.pos)
        if pos_line != result.line:
            col = 1
        elif pos_line == 1:
            col = max(col - len(ALERT_PREFIX), 1)
        raise TemplateError(result.message, result.line, col)


def parse_error_text(error: TemplateError, alertname: str = "") -> str:
    """The text Prometheus prints for a template of alert ``alertname`` that does not parse."""
    return f"template: __alert_{alertname}:{error.line}: {error.message}"


def render(
    text: str,
    data: Any,
    *,
    funcs: Mapping[str, Func | Callable[..., Any]] | None = None,
    name: str = "",
    limits: Limits | None = None,
    env: Env | None = None,
) -> str:
    """Execute ``text`` over ``data`` (dicts, lists, scalars, GoMap, or GoStruct/dataclass values
    whose fields are the only readable attributes). Raises TemplateError with Go's message."""
    table = _func_table(funcs)
    result = _compile(name, text, frozenset(table))
    if isinstance(result, ParseError):
        pos_line, col = _position(text, result.pos)
        raise TemplateError(_parse_error(name, result), result.line, col if pos_line == result.line else 1)
    state = State(result, table, name, limits or Limits(), env or Env())
    try:
        return state.execute(name, data)
    except ExecError as exc:
        node = state.node
        line, col = _position(text, node.pos) if node is not None else (0, 0)
        raise TemplateError(str(exc), line, col) from None
    except RecursionError:
        raise TemplateError(f"template: {name}: nesting too deep to execute") from None


def expand_alert(
    text: str,
    *,
    labels: Mapping[str, str],
    value: float,
    external_labels: Mapping[str, str] | None = None,
    external_url: str = "",
    at: float = 0.0,
    query: QueryFn | None = None,
    alertname: str = "",
    limits: Limits | None = None,
) -> str:
    """Render an annotation or label template for one alert, as a Prometheus alerting rule does.

    ``labels`` are the sample's labels (``$labels``; Prometheus passes the query result's labels, not
    the rule's extra labels nor ``alertname``); ``at`` is the evaluation time in unix seconds;
    ``query(expr)`` runs an instant query at that time and returns objects with ``labels`` and
    ``value``. Never raises: a failure renders as ``<error expanding template: ...>``.
    """
    try:
        plan = _text_plan(text)
        if plan is not None:
            fast = _run_plan(plan, labels, float(value), external_url, (limits or _LIMITS).max_output)
            if fast is not None:
                return fast
    except Exception:  # noqa: BLE001, S110 - the interpreter below gives the answer, or its error
        pass
    name = "__alert_" + alertname
    full = ALERT_PREFIX + text
    data = AlertData(
        Labels=GoMap(dict(labels)),
        ExternalLabels=GoMap(dict(external_labels or {})),
        ExternalURL=external_url,
        Value=float(value),
    )
    env = Env(
        external_url=external_url,
        path_prefix=urlsplit(external_url).path if external_url else "",
        now=at,
        query=query,
    )
    try:
        result = _compile(name, full, frozenset(DEFAULT_FUNCS))
        if isinstance(result, ParseError):
            return f"<error expanding template: error parsing template {name}: {_parse_error(name, result)}>"
        state = State(result, DEFAULT_FUNCS, name, limits or Limits(), env)
        try:
            return state.execute(name, data)
        except ExecError as exc:
            return f"<error expanding template: error executing template {name}: {exc}>"
    except RecursionError:
        return f"<error expanding template: error executing template {name}: nesting too deep>"
    except Exception as exc:  # noqa: BLE001 - a template must never take the rule down with it
        return f"<error expanding template: internal error in template {name}: {type(exc).__name__}>"


def render_for_cli(text: str, labels: Mapping[str, str], value: float, *, alertname: str = "") -> str:
    """What ``alerting render`` prints: the template expanded for one alert with these labels."""
    return expand_alert(text, labels=labels, value=value, alertname=alertname)
