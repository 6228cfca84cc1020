"""The shape of the code: one settings module reads the environment; configuration is data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "alerting" / "config" / "settings.py"


def _modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


_ENVIRON = ("environ", "environb", "getenv", "putenv", "unsetenv")


def _names(node: ast.ImportFrom) -> set[str]:
    return {alias.name for alias in node.names}


def _reads_environ(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr in _ENVIRON) == ("os", True):
                return True
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and _names(node) & set(_ENVIRON):
            return True
    return False


@pytest.mark.parametrize("path", _modules("alerting", "tasks"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_settings_module_reads_the_environment(path: Path) -> None:
    if path == SETTINGS:
        return
    assert not _reads_environ(ast.parse(path.read_text(), str(path))), f"{path} reads os.environ"


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(
    "path", _modules("alerting/routing", "alerting/config"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_routing_and_configuration_import_nothing_from_notify(path: Path) -> None:
    imported = _imported(ast.parse(path.read_text(), str(path)))
    assert not {n for n in imported if n == "alerting.notify" or n.startswith("alerting.notify.")}


def _imports_by_name(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name in ("importlib", "pkgutil") for a in node.names):
            return True
        # Reading package metadata (importlib.metadata) is fine; loading modules by name is not.
        if (
            isinstance(node, ast.ImportFrom)
            and node.module in ("importlib", "pkgutil")
            and _names(node) - {"metadata"}
        ):
            return True
    return False


@pytest.mark.parametrize("path", _modules("alerting", "tasks"), ids=lambda p: str(p.relative_to(ROOT)))
def test_first_party_modules_are_imported_explicitly_not_by_name(path: Path) -> None:
    assert not _imports_by_name(ast.parse(path.read_text(), str(path))), path


def test_each_table_entry_is_listed_under_its_own_name() -> None:
    from alerting.config.alertmanager import INTEGRATION_KEYS
    from alerting.notify.receivers import INTEGRATIONS
    from alerting.sources import KINDS

    assert all(name == kind.name for name, kind in KINDS.items())
    assert set(INTEGRATIONS) == set(INTEGRATION_KEYS)


REDISCONN = ROOT / "alerting" / "redisconn.py"


def _name(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _builds_redis_clients(tree: ast.AST) -> bool:
    """``redis.Redis(...)``, ``Redis.from_url(...)``, ``Sentinel(...)`` and the like."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name in ("Redis", "StrictRedis", "Sentinel", "ConnectionPool"):
            return True
        owner = node.func.value if isinstance(node.func, ast.Attribute) else None
        if name == "from_url" and owner is not None and _name(owner) in ("Redis", "StrictRedis"):
            return True
    return False


@pytest.mark.parametrize("path", _modules("alerting", "tasks"), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_redis_client_is_built_by_redisconn(path: Path) -> None:
    """One place reads Redis URLs (one server or Sentinel) and builds clients."""
    if path == REDISCONN:
        return
    assert not _builds_redis_clients(ast.parse(path.read_text(), str(path))), path
