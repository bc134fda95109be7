"""Routes do one thing (STYLE.md): read the request, make one service call, shape the answer.

Every ``@route`` function of chalicelib/api is read with ``ast`` (nothing is imported), and fails here, by
name, when its body — with the module's own helpers it calls and the functions it defines inline —

* makes more than one call into ``chalicelib.services`` on any one path through it (exclusive ``if``/``else``
  branches and the code after an ``if`` that returns count apart; a call inside a loop counts as many). A
  service call is a call of a name bound to a ``chalicelib.services`` module (``import``, ``from … import``,
  ``lazy("chalicelib.services.…")``, module-level or inside the function) or to a function imported from one;
  names starting with a capital (dataclasses such as ``Scope``) are not calls into a use case;
* touches ``ctx.uow.<anything>`` (passing ``ctx.uow`` along is the point) or calls ``.commit()``;

and a route module fails when it imports another route module: view builders live in views.py.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[2] / "chalicelib" / "api"
SERVICES = "chalicelib.services"
#: Modules of chalicelib/api that are not route modules: any route module may import them.
PLUMBING = {"routing", "responses", "inputs", "bodies", "views", "errors", "request", "schemas", "validator",
            "openapi", "auth", "middleware", "session", "ratelimit",
            "local_stripe_html"}  # the local Stripe stand-in's page templates (no routes)
MANY = 2  # what a service call inside a loop or comprehension counts as


def _is_route(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef) and any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "route"
        for d in node.decorator_list)


@dataclass
class Bindings:
    """Names bound to service modules, to functions imported from them, and to the unit of work."""

    modules: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    uow: set[str] = field(default_factory=set)  # ``uow = ctx.uow``

    def read(self, statements: list[ast.stmt]) -> Bindings:
        """These bindings plus those made by import statements and ``lazy(...)`` assignments in ``statements``
        (nested blocks included, nested functions not)."""
        found = Bindings(set(self.modules), set(self.functions), set(self.uow))
        for node in _walk_shallow(statements):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(SERVICES + ".") and alias.asname:
                        found.modules.add(alias.asname)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    name = alias.asname or alias.name
                    if node.module == SERVICES or (node.module == "chalicelib" and alias.name == "services"):
                        found.modules.add(name)
                    elif node.module.startswith(SERVICES + "."):
                        found.functions.add(name)
            elif isinstance(node, ast.Assign) and _lazy_service(node.value):
                found.modules.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute) and node.value.attr == "uow":
                found.uow.update(t.id for t in node.targets if isinstance(t, ast.Name))
        return found


def _lazy_service(value: ast.expr) -> bool:
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "lazy"
            and bool(value.args) and isinstance(value.args[0], ast.Constant)
            and str(value.args[0].value).startswith(SERVICES))


def _walk_shallow(statements: list[ast.stmt]):
    """Every node under ``statements`` except what nested functions and lambdas hold."""
    stack: list[ast.AST] = list(statements)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                stack.append(child)


@dataclass
class Report:
    calls: int = 0  # service calls on the busiest path
    problems: list[str] = field(default_factory=list)


class RouteReader:
    """Counts a function's service calls path by path and collects its uses of the unit of work."""

    def __init__(self, helpers: dict[str, ast.FunctionDef], bindings: Bindings) -> None:
        self.helpers = helpers
        self.module_bindings = bindings

    def read(self, function: ast.FunctionDef | ast.Lambda, bindings: Bindings | None = None,
             seen: frozenset[str] = frozenset()) -> Report:
        body = function.body if isinstance(function, ast.FunctionDef) else [ast.Expr(function.body)]
        scope = (bindings or self.module_bindings).read(body)
        report = Report()
        report.calls = self._block(body, scope, seen, report)
        return report

    def _block(self, statements: list[ast.stmt], scope: Bindings, seen: frozenset[str], report: Report) -> int:
        total = 0
        for index, statement in enumerate(statements):
            if isinstance(statement, ast.If) and not statement.orelse and _ends(statement.body):
                # ``if …: return …`` — the rest of the block runs only when the branch does not
                test = self._expr(statement.test, scope, seen, report)
                branch = self._block(statement.body, scope, seen, report)
                rest = self._block(statements[index + 1:], scope, seen, report)
                return total + test + max(branch, rest)
            total += self._statement(statement, scope, seen, report)
        return total

    def _statement(self, statement: ast.stmt, scope: Bindings, seen: frozenset[str], report: Report) -> int:
        if isinstance(statement, ast.If):
            return (self._expr(statement.test, scope, seen, report)
                    + max(self._block(statement.body, scope, seen, report),
                          self._block(statement.orelse, scope, seen, report)))
        if isinstance(statement, ast.For | ast.While):
            head = self._expr(statement.iter if isinstance(statement, ast.For) else statement.test, scope, seen,
                              report)
            inner = self._block(statement.body, scope, seen, report) + self._block(statement.orelse, scope, seen,
                                                                                 report)
            return head + (MANY if inner else 0)
        if isinstance(statement, ast.FunctionDef):  # defined inline: it runs within the request
            inner = self.read(statement, scope, seen)
            report.problems.extend(inner.problems)
            return inner.calls
        if isinstance(statement, ast.Try):
            return sum(self._block(block, scope, seen, report)
                       for block in (statement.body, *(h.body for h in statement.handlers), statement.orelse,
                                     statement.finalbody))
        if isinstance(statement, ast.With):
            return (sum(self._expr(item.context_expr, scope, seen, report) for item in statement.items)
                    + self._block(statement.body, scope, seen, report))
        return self._expr(statement, scope, seen, report)

    def _expr(self, node: ast.AST, scope: Bindings, seen: frozenset[str], report: Report) -> int:
        """Service calls in a simple statement or expression (conditional expressions take the busier arm)."""
        if isinstance(node, ast.IfExp):
            return self._expr(node.test, scope, seen, report) + max(self._expr(node.body, scope, seen, report),
                                                                   self._expr(node.orelse, scope, seen, report))
        if isinstance(node, ast.Lambda):
            inner = self.read(node, scope, seen)
            report.problems.extend(inner.problems)
            return inner.calls
        if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            inner = sum(self._expr(child, scope, seen, report) for child in ast.iter_child_nodes(node))
            return MANY if inner else 0
        count = 0
        if isinstance(node, ast.Attribute):
            self._uow_use(node, scope, report)
        if isinstance(node, ast.Call):
            count += self._call(node, scope, seen, report)
        for child in ast.iter_child_nodes(node):
            count += self._expr(child, scope, seen, report)
        return count

    def _call(self, call: ast.Call, scope: Bindings, seen: frozenset[str], report: Report) -> int:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "commit":
            report.problems.append(f"commits ({ast.unparse(call)})")
        if isinstance(func, ast.Name):
            if func.id in scope.functions and not func.id[:1].isupper():
                return 1
            if func.id in self.helpers and func.id not in seen:
                inner = self.read(self.helpers[func.id], None, seen | {func.id})
                report.problems.extend(f"{p} in {func.id}()" for p in inner.problems)
                return inner.calls
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in scope.modules
                and not func.attr[:1].isupper()):
            return 1
        return 0

    @staticmethod
    def _uow_use(node: ast.Attribute, scope: Bindings, report: Report) -> None:
        if ((isinstance(node.value, ast.Attribute) and node.value.attr == "uow")
                or (isinstance(node.value, ast.Name) and node.value.id in scope.uow)):
            report.problems.append(f"uses the unit of work directly ({ast.unparse(node)})")


def _ends(statements: list[ast.stmt]) -> bool:
    return bool(statements) and isinstance(statements[-1], ast.Return | ast.Raise)


def read_module(source: str, name: str = "<module>") -> dict[str, list[str]]:
    """``{route name: what is wrong with it}`` for every route of one module's source."""
    tree = ast.parse(source, name)
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and not _is_route(n)}
    reader = RouteReader(helpers, Bindings().read(tree.body))
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if _is_route(node):
            report = reader.read(node, seen=frozenset({node.name}))
            problems = list(dict.fromkeys(report.problems))
            if report.calls > 1:
                problems.insert(0, f"makes {report.calls} service calls on one path")
            found[node.name] = problems
    return found


def route_imports(source: str) -> list[str]:
    """The chalicelib.api modules (other than plumbing) that a module's source imports."""
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "chalicelib.api":
                imported += [a.name for a in node.names]
            elif node.module.startswith("chalicelib.api."):
                imported.append(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            imported += [a.name.split(".")[2] for a in node.names if a.name.startswith("chalicelib.api.")]
    return [m for m in dict.fromkeys(imported) if m not in PLUMBING]


def route_modules() -> dict[str, str]:
    return {path.stem: source for path in sorted(API.glob("*.py"))
            if "@route(" in (source := path.read_text())}


ROUTES = [(module, route) for module, source in route_modules().items() for route in read_module(source, module)]


@pytest.mark.parametrize(("module", "route"), ROUTES, ids=[f"{m}.{r}" for m, r in ROUTES])
def test_a_route_makes_one_service_call_and_never_touches_storage(module, route):
    problems = read_module(route_modules()[module], module)[route]
    assert not problems, f"{module}.{route}: " + "; ".join(problems)


@pytest.mark.parametrize("module", sorted(route_modules()))
def test_a_route_module_imports_no_other_route_module(module):
    others = route_imports(route_modules()[module])
    assert not others, f"{module} imports the route module(s) {', '.join(others)}: move views to views.py"


def test_there_are_routes_to_check():
    assert len(ROUTES) >= 60


BAD = '''
from chalicelib.lazy import lazy
from chalicelib.services import customers as customer_service
from chalicelib.services.ingest import submit_deltas
from chalicelib.api.balance import delta_view
checkpoint_service = lazy("chalicelib.services.checkpoints")

def _helper(ctx):
    return checkpoint_service.scope_of(ctx.uow, "t")

@route(bp, "/a", "GET")
def two_calls(ctx):
    customer = customer_service.get_customer(ctx.uow, "t")
    return ok(submit_deltas(ctx.uow, customer))

@route(bp, "/b", "GET")
def through_a_helper(ctx):
    return ok(customer_service.get_customer(ctx.uow, _helper(ctx)))

@route(bp, "/c", "GET")
def repository(ctx):
    return ok(ctx.uow.deltas.get("t"))

@route(bp, "/c2", "GET")
def repository_by_alias(ctx):
    uow = ctx.uow
    return ok(customer_service.get_customer(uow, "t"), uow.deltas.get("t"))

@route(bp, "/d", "POST")
def commits(ctx):
    customer_service.create(ctx.uow)
    ctx.uow.commit()

@route(bp, "/e", "GET")
def local_import(ctx):
    from chalicelib.services import exports

    return ok(exports.one(ctx.uow), customer_service.two(ctx.uow))

@route(bp, "/f", "GET")
def in_a_loop(ctx, ids):
    return ok([customer_service.get_customer(ctx.uow, i) for i in ids])

@route(bp, "/g", "GET")
def branches(ctx, flag):
    if flag:
        return ok(customer_service.one(ctx.uow))
    value = customer_service.two(ctx.uow) if flag else checkpoint_service.three(ctx.uow)
    return ok(value, checkpoint_service.Scope("t"))
'''


def test_the_reader_names_each_kind_of_fat_route():
    found = read_module(BAD)
    assert found["two_calls"] == ["makes 2 service calls on one path"]
    assert found["through_a_helper"] == ["makes 2 service calls on one path"]
    assert found["repository"] == ["uses the unit of work directly (ctx.uow.deltas)"]
    assert found["repository_by_alias"] == ["uses the unit of work directly (uow.deltas)"]
    assert found["commits"] == ["commits (ctx.uow.commit())", "uses the unit of work directly (ctx.uow.commit)"]
    assert found["local_import"] == ["makes 2 service calls on one path"]
    assert found["in_a_loop"] == ["makes 2 service calls on one path"]
    assert found["branches"] == []  # one call on each path; a dataclass is no use case
    assert route_imports(BAD) == ["balance"]
