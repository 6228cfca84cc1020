"""The evaluator: walks a parsed template over data and writes text, as Go's text/template executes.

It keeps Go's notion of "the node being evaluated" so a runtime error names the same position and
the same source fragment Go names (``template: x:1:5: executing "x" at <humanize $v>: ...``).
It is also the sandbox: data is reached only through maps, allow-listed struct fields and methods,
and three bounds stop a template from running away: total output, loop iterations (plus template
calls), and template call depth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alerting.errors import AlertingError
from alerting.templating.fmt import FormatLimitError, print_value, sprint
from alerting.templating.funcs import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    STRING,
    VALUE,
    Func,
    FuncError,
    method_func,
    query_samples,
    truth,
)
from alerting.templating.options import Env, Limits
from alerting.templating.parser import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    Tree,
    VariableNode,
)
from alerting.templating.strconv import quote
from alerting.templating.values import (
    GoMap,
    GoStruct,
    QueryResult,
    as_map,
    fields_of,
    type_name,
)


class ExecError(Exception):
    """A runtime failure, worded as Go words it (``template: NAME:LINE:COL: executing ...``)."""


class _Missing:
    """Go's missingVal: 'no value from the previous pipeline stage'."""


_MISSING = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class State:
    """One execution: variables, output, the current node, and the bounds."""

    def __init__(
        self,
        trees: Mapping[str, Tree],
        funcs: Mapping[str, Func],
        parse_name: str,
        limits: Limits,
        env: Env,
    ) -> None:
        self.trees = trees
        self.funcs = funcs
        self.parse_name = parse_name
        self.limits = limits
        self.env = env
        self.tmpl_name = parse_name
        self.vars: list[list[Any]] = []
        self.node: Node | None = None
        self.out: list[str] = []
        self.size = 0
        self.iterations = 0
        self.queries = 0
        self.depth = 0

    # --- errors ---
    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, message: str) -> ExecError:
        name = self.tmpl_name
        if self.node is None:
            return ExecError(f"template: {name}: {message}")
        tree = self.trees.get(self.tmpl_name)
        text = tree.text if tree is not None else ""
        pos = self.node.pos
        before = text[:pos]
        newline = before.rfind("\n")
        line = before.count("\n") + 1
        col = _byte_len(before) if newline < 0 else _byte_len(before[newline + 1 :])
        context = self.node.string()
        location = f"{self.parse_name}:{line}:{col}"
        return ExecError(f"template: {location}: executing {quote(name)} at <{context}>: {message}")

    # --- output ---
    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limits.max_output:
            self.node = None
            raise self.errorf(f"output exceeds the limit of {self.limits.max_output} characters")
        self.out.append(text)

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_iterations:
            raise self.errorf(f"exceeded the limit of {self.limits.max_iterations} loop iterations")

    # --- variables ---
    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: Any) -> None:
        self.vars[-n][1] = value

    def var_value(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.errorf(f"undefined variable: {name}")

    # --- queries ---
    def run_query(self, expr: str) -> QueryResult:
        self.queries += 1
        if self.queries > self.limits.max_queries:
            raise FuncError(f"more than {self.limits.max_queries} queries in one template")
        if self.env.query is None:
            raise FuncError(f"cannot run query {quote(expr)}: no datasource in this context")
        try:
            return query_samples(self.env.query(expr))
        except AlertingError as exc:
            raise FuncError(str(exc)) from None

    # --- walking ---
    def execute(self, name: str, data: Any) -> str:
        tree = self.trees.get(name)
        self.tmpl_name = name
        self.vars = [["$", data]]
        if tree is None or tree.root is None:
            raise self.errorf(f"{quote(name)} is an incomplete or empty template")
        self.walk(data, tree.root)
        return "".join(self.out)

    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        if isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, value)
        elif isinstance(node, TextNode):
            self.write(node.text)
        elif isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, BranchNode):
            self.walk_if_or_with(isinstance(node, IfNode), dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break()
        elif isinstance(node, ContinueNode):
            raise _Continue()
        else:
            raise self.errorf(f"unknown node: {node.string()}")

    def walk_if_or_with(self, is_if: bool, dot: Any, node: BranchNode) -> None:
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if truth(value):
                self.walk(dot if is_if else value, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, node: RangeNode) -> None:
        self.at(node)
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            inner = self.mark()
            decl = node.pipe.decl
            items: list[tuple[Any, Any]]
            if isinstance(value, list | tuple):
                items = list(enumerate(value))
            elif isinstance(value, Mapping):
                gomap = as_map(value)
                items = [(key, gomap[key]) for key in sorted(gomap)]
            elif value is None:
                items = []
            else:
                raise self.errorf(f"range can't iterate over {self._sprint(value)}")
            for index, elem in items:
                self.tick()
                if decl:
                    if node.pipe.is_assign:
                        self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
                    else:
                        self.set_top_var(1, elem)
                if len(decl) > 1:
                    if node.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.set_top_var(2, index)
                try:
                    self.walk(elem, node.list)
                except _Continue:
                    pass
                except _Break:
                    return
                finally:
                    self.pop(inner)
            if not items and node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_template(self, dot: Any, node: TemplateNode) -> None:
        self.at(node)
        tree = self.trees.get(node.name)
        if tree is None or tree.root is None:
            raise self.errorf(f"template {quote(node.name)} not defined")
        if self.depth >= self.limits.max_depth:
            raise self.errorf(f"exceeded maximum template depth ({self.limits.max_depth})")
        self.tick()
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else None
        saved = (self.vars, self.tmpl_name)
        self.vars = [["$", new_dot]]
        self.tmpl_name = node.name
        self.depth += 1
        try:
            self.walk(new_dot, tree.root)
        finally:
            self.depth -= 1
            self.vars, self.tmpl_name = saved

    # --- evaluation ---
    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.at(pipe)
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def not_a_function(self, args: Sequence[Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            raise self.errorf(f"can't give argument to non-function {args[0].string()}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            raise self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        raise self.errorf(f"can't evaluate command {quote(first.string())}")

    def ideal_constant(self, node: NumberNode) -> Any:
        self.at(node)
        text = node.text
        if node.is_complex:
            return node.complex_value
        is_hex_int = len(text) > 2 and text[0] == "0" and text[1] in "xX" and not any(c in text for c in "pP")
        if node.is_float and not is_hex_int and not text.startswith("'") and any(c in text for c in ".eEpP"):
            return node.float_value
        if node.is_int:
            return node.int_value
        if node.is_uint:
            raise self.errorf(f"{text} overflows int")
        return None

    def eval_field_node(self, dot: Any, node: FieldNode, args: Sequence[Node], final: Any) -> Any:
        self.at(node)
        return self.eval_field_chain(dot, dot, node, node.ident, args, final)

    def eval_chain_node(self, dot: Any, node: ChainNode, args: Sequence[Node], final: Any) -> Any:
        self.at(node)
        if isinstance(node.node, NilNode):
            raise self.errorf(f"indirection through explicit nil in {node.string()}")
        receiver = self.eval_arg(dot, None, node.node)
        return self.eval_field_chain(dot, receiver, node, node.fields, args, final)

    def eval_variable_node(self, dot: Any, node: VariableNode, args: Sequence[Node], final: Any) -> Any:
        self.at(node)
        value = self.var_value(node.ident[0])
        if len(node.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, node, node.ident[1:], args, final)

    def eval_field_chain(
        self, dot: Any, receiver: Any, node: Node, ident: Sequence[str], args: Sequence[Node], final: Any
    ) -> Any:
        boxed = False
        for name in ident[:-1]:
            result = self.eval_field(dot, name, node, (), _MISSING, receiver, boxed)
            # An element of a map[string]interface {} is an interface value until the pipeline
            # ends; Go names its static type in errors about the next field.
            boxed = isinstance(receiver, GoMap) and receiver.elem == "interface {}"
            receiver = result
        return self.eval_field(dot, ident[-1], node, args, final, receiver, boxed)

    def eval_field(
        self,
        dot: Any,
        name: str,
        node: Node,
        args: Sequence[Node],
        final: Any,
        receiver: Any,
        boxed: bool = False,
    ) -> Any:
        if receiver is None:
            if boxed:
                raise self.errorf(f"nil pointer evaluating interface {{}}.{name}")
            return None
        if isinstance(receiver, GoStruct):
            method = method_func(receiver, name)
            if method is not None:
                return self.eval_call(dot, method, node, name, args, final)
        has_args = len(args) > 1 or final is not _MISSING
        if isinstance(receiver, Mapping):
            if has_args:
                raise self.errorf(f"{name} is not a method but has arguments")
            gomap = as_map(receiver)
            return gomap[name] if name in gomap else gomap.zero()
        if name in fields_of(receiver):
            if has_args:
                raise self.errorf(f"{name} has arguments but cannot be invoked as function")
            field = getattr(receiver, name)
            if isinstance(field, Mapping) and not isinstance(field, GoMap):
                return as_map(field)
            return field
        static = "interface {}" if boxed else type_name(receiver)
        raise self.errorf(f"can't evaluate field {name} in type {static}")

    def eval_function(
        self, dot: Any, node: IdentifierNode, cmd: Node, args: Sequence[Node] | None, final: Any
    ) -> Any:
        self.at(node)
        func = self.funcs.get(node.name)
        if func is None:
            raise self.errorf(f"{quote(node.name)} is not a defined function")
        return self.eval_call(dot, func, cmd, node.name, args, final)

    def eval_call(
        self, dot: Any, func: Func, node: Node, name: str, args: Sequence[Node] | None, final: Any
    ) -> Any:
        call_args = list(args[1:]) if args else []
        num_in = len(call_args) + (0 if final is _MISSING else 1)
        num_fixed = len(call_args)
        if func.variadic is not None:
            num_fixed = len(func.params)
            if num_in < num_fixed:
                raise self.errorf(
                    f"wrong number of args for {name}: want at least {num_fixed} got {len(call_args)}"
                )
        elif num_in != len(func.params):
            raise self.errorf(f"wrong number of args for {name}: want {len(func.params)} got {num_in}")

        if name in ("and", "or") and func is self.funcs.get(name) and func.variadic == VALUE:
            value: Any = None
            for arg in call_args:
                value = self.eval_arg(dot, VALUE, arg)
                if truth(value) == (name == "or"):
                    return value
            if final is not _MISSING:
                value = final
            return value

        argv: list[Any] = []
        i = 0
        while i < num_fixed and i < len(call_args):
            argv.append(self.eval_arg(dot, func.params[i], call_args[i]))
            i += 1
        if func.variadic is not None:
            while i < len(call_args):
                argv.append(self.eval_arg(dot, func.variadic, call_args[i]))
                i += 1
        if final is not _MISSING:
            if func.variadic is not None and num_in - 1 >= num_fixed:
                param = func.variadic
            else:
                param = func.params[num_in - 1]
            argv.append(self.validate_type(final, param))
        try:
            result = func.fn(self, *argv)
        except FuncError as exc:
            self.at(node)
            raise self.errorf(f"error calling {name}: {exc}") from None
        except FormatLimitError as exc:
            self.at(node)
            raise self.errorf(f"error calling {name}: {exc}") from None
        if isinstance(result, str) and len(result) > self.limits.max_output:
            self.at(node)
            raise self.errorf(f"error calling {name}: result exceeds {self.limits.max_output} characters")
        return result

    def validate_type(self, value: Any, param: str | None) -> Any:
        if param is None or param in (ANY, VALUE):
            return value
        if value is None:
            if param in (STRING, FLOAT, INT, BOOL):
                raise self.errorf(f"invalid value; expected {param}")
            return None
        if type_name(value) != param:
            raise self.errorf(f"wrong type for value; expected {param}; got {type_name(value)}")
        return value

    def eval_arg(self, dot: Any, param: str | None, node: Node) -> Any:
        self.at(node)
        if isinstance(node, DotNode):
            return self.validate_type(dot, param)
        if isinstance(node, NilNode):
            if param in (STRING, FLOAT, INT, BOOL):
                raise self.errorf(f"cannot assign nil to {param}")
            return None
        if isinstance(node, FieldNode):
            return self.validate_type(self.eval_field_node(dot, node, [node], _MISSING), param)
        if isinstance(node, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, node, (), _MISSING), param)
        if isinstance(node, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, node), param)
        if isinstance(node, IdentifierNode):
            return self.validate_type(self.eval_function(dot, node, node, None, _MISSING), param)
        if isinstance(node, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, node, (), _MISSING), param)
        if param == BOOL:
            if isinstance(node, BoolNode):
                return node.value
            raise self.errorf(f"expected bool; found {node.string()}")
        if param == FLOAT:
            if isinstance(node, NumberNode) and node.is_float:
                return node.float_value
            raise self.errorf(f"expected float; found {node.string()}")
        if param == INT:
            if isinstance(node, NumberNode) and node.is_int:
                return node.int_value
            raise self.errorf(f"expected integer; found {node.string()}")
        if param == STRING:
            if isinstance(node, StringNode):
                return node.text
            raise self.errorf(f"expected string; found {node.string()}")
        if param in (ANY, VALUE, None):
            return self.eval_empty_interface(dot, node)
        raise self.errorf(f"can't handle {node.string()} for arg of type {param}")

    def eval_empty_interface(self, dot: Any, node: Node) -> Any:
        self.at(node)
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return self.ideal_constant(node)
        if isinstance(node, StringNode):
            return node.text
        raise self.errorf(f"can't handle assignment of {node.string()} to empty interface argument")

    # --- printing ---
    def _sprint(self, value: Any) -> str:
        return sprint([value], self.limits.max_output)

    def print_value(self, node: Node, value: Any) -> None:
        self.at(node)
        try:
            text = print_value(value, self.limits.max_output)
        except FormatLimitError as exc:
            raise self.errorf(str(exc)) from None
        self.write(text)
