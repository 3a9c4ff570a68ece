"""The package's layering: stages import the base modules and themselves, never upwards, and
each concept has one home (module-level imports; a stage may import another lazily for a feature,
e.g. the PyTorch backend imports the models)."""

import ast

import pytest
from conftest import REPO

PKG = REPO / "anydepth_edge"
BASE = {"errors", "checks", "console", "sidecars", "model_facts", "resolution", "model_input", "fileio", "targets", "artifacts",
        "pins", "host_memory", "platform_info", "agreement", "typed_fp16", "weights", "images", "__init__", "__version__"}
ALLOWED = {  # layer -> what its modules may import at module level (besides themselves)
    "base": BASE,
    "models": BASE,
    "export": BASE | {"models"},
    "engines": BASE,
    "bench": BASE | {"engines"},
    "runtime": BASE | {"engines"},
    "ros2": BASE | {"engines", "runtime"},
    "evaluation": BASE | {"engines", "runtime"},
}


def _layer(path):
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else ("base" if rel.stem in BASE else rel.stem)


def _imports(path):
    """anydepth_edge.<first part> of every module-level import (not those inside functions)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "anydepth_edge" else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "anydepth_edge" and len(parts) > 1:
                yield parts[1]


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_upward_imports(path):
    layer = _layer(path)
    if layer not in ALLOWED:
        return  # cli, doctor, __main__: the top
    bad = {m for m in _imports(path) if m not in ALLOWED[layer] and m != layer}
    assert not bad, f"{path.relative_to(REPO)} ({layer}) imports {sorted(bad)} at module level"


def test_one_home_for_sidecar_names():
    """Only sidecars.py names sidecar files (no `.with_suffix(".json")` anywhere else)."""
    offenders = [str(p.relative_to(REPO)) for p in PKG.rglob("*.py")
                 if p.name != "sidecars.py" and 'with_suffix(".json")' in p.read_text()]
    assert offenders == []


def _module_name(path):
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
    return ".".join(parts)


def _all_imports(path, modules):
    """The anydepth_edge modules `path` imports anywhere, inside functions too (the deepest module
    each import names: `from anydepth_edge.runtime.camera import X` is anydepth_edge.runtime.camera)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("anydepth_edge"):
                yield name


def test_no_import_cycles_counting_function_level_imports():
    """A lazy import is still a dependency: no two modules may reach each other."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {m: {d for d in _all_imports(p, modules) if d != m} for m, p in modules.items()}

    def reaches(start, goal):
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a != "anydepth_edge" and reaches(b, a)})
    assert cycles == []


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 350, 60


def test_modules_and_functions_stay_small():
    """A module one can read in a sitting, a function one can see at once (issue 21's bar)."""
    big, long = [], []
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines")
    assert big == [] and long == []


def _imported_names(path):
    """Every module an import names in `path`, at any depth (lazy imports included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_rich_rendering_lives_in_views():
    """Stages return records; views.py renders them (console.py owns the consoles and progress), and
    only the CLI calls views."""
    rich_users, views_users = [], []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        names = set(_imported_names(path))
        if any(n == "rich" or n.startswith("rich.") for n in names) and rel not in ("views.py", "console.py"):
            rich_users.append(rel)
        if "anydepth_edge.views" in names and not rel.startswith("cli/"):
            views_users.append(rel)
    assert rich_users == [] and views_users == []


def test_one_resolver_judges_and_picks_artifacts():
    """Whether an engine runs here is asked through the resolver (engines.compat holds the rule; the
    build step asks it too, whether its previous engine can be reused, and the backend refuses one at
    load), and no other module looks through an engines folder for one."""
    askers, globbers = [], []
    for path in sorted(PKG.rglob("*.py")):
        rel, text = path.relative_to(PKG).as_posix(), path.read_text()
        if rel not in ("resolver.py", "engines/compat.py", "engines/ensure.py") and "engine_problem(" in text:
            askers.append(rel)
        if rel != "resolver.py" and 'glob("*.engine")' in text:
            globbers.append(rel)
    assert askers == [] and globbers == []
