"""Our TensorRT code and our TensorRT fake, checked against the names the real bindings register
(8.6.1: JetPack 6.0's line; 10.3.0: JetPack 6.1/6.2; 10.16.1: JetPack 7.2; 11.4.0: JetPack 7.2.2+ and
pip). How the names are read, and what that can and cannot show: tests/trt_bindings.py.

1. Every `trt.<name>` chain in the package names only what each supported version registers, unless
   it sits behind a guard: `hasattr(..., "<name>")`, or a version check (`trt_major(...)`,
   `has_weak_typing(...)`) in an enclosing `if` / `and`, or in a function every caller of which is so
   guarded. `getattr(x, "NAME", default)` is its own guard (a string, not a chain).
2. The fake of each version offers no class, enum member, method or property the real module of that
   version lacks: what TensorRT 11 removed, the fake of 11 refuses too (AttributeError).
"""

import ast
from pathlib import Path

import pytest
from conftest import REPO
from fakes.fake_tensorrt import FAKE_INTERNAL, make_fake_tensorrt
from trt_bindings import WHEELS, is_registered, unavailable

PKG = REPO / "anydepth_edge"
VERSION_GUARDS = {"trt_major", "has_weak_typing"}
PYTHON_SIDE = {"__version__"}  # a str from the package's __init__.py: what follows is str's, not TensorRT's


def _need(version):
    why = unavailable(version)
    if why:
        pytest.skip(f"the real TensorRT {version} bindings cannot be had here: {why}")


class _Module:
    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_text())
        self.parent = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node


def _chain(node):
    """['BuilderFlag', 'FP16'] for trt.BuilderFlag.FP16 (the outermost Attribute of a chain rooted at `trt`)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return list(reversed(parts)) if isinstance(node, ast.Name) and node.id == "trt" else None


def _guards(test, names) -> bool:
    for n in ast.walk(test):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            if n.func.id in VERSION_GUARDS:
                return True
            if n.func.id == "hasattr" and len(n.args) == 2 and isinstance(n.args[1], ast.Constant) \
                    and n.args[1].value in names:
                return True
    return False


def _guarded(modules, mod, node, names, seen=frozenset()) -> bool:
    child, parent = node, mod.parent.get(node)
    while parent is not None:
        if isinstance(parent, (ast.If, ast.IfExp, ast.While)) and child is not parent.test and _guards(parent.test, names):
            return True
        if isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.And):
            before = parent.values[: parent.values.index(child)] if child in parent.values else []
            if any(_guards(v, names) for v in before):
                return True
        if isinstance(parent, ast.FunctionDef) and isinstance(mod.parent.get(parent), ast.ClassDef):
            pass  # a method of a class we define for TensorRT to call: the class's own scope decides
        elif isinstance(parent, ast.FunctionDef):  # guarded when every caller is
            if parent.name in seen:
                return False
            calls = [(m, c) for m in modules for c in ast.walk(m.tree)
                     if isinstance(c, ast.Call) and getattr(c.func, "id", getattr(c.func, "attr", None)) == parent.name]
            return bool(calls) and all(_guarded(modules, m, c, names, seen | {parent.name}) for m, c in calls)
        child, parent = parent, mod.parent.get(parent)
    return False


def trt_accesses():
    """(module, line, chain, guarded) of every `trt.` chain in the package."""
    modules = [_Module(p) for p in sorted(PKG.rglob("*.py"))]
    for mod in modules:
        for node in ast.walk(mod.tree):
            if not isinstance(node, ast.Attribute) or isinstance(mod.parent.get(node), ast.Attribute):
                continue
            chain = _chain(node)
            if not chain:
                continue
            if any(p in PYTHON_SIDE for p in chain):
                chain = chain[: next(i for i, p in enumerate(chain) if p in PYTHON_SIDE) + 1]
            yield mod, node.lineno, chain, _guarded(modules, mod, node, set(chain))


@pytest.mark.parametrize("version", sorted(WHEELS))
def test_the_engine_code_touches_only_names_each_tensorrt_registers(version):
    _need(version)
    accesses = list(trt_accesses())
    assert len(accesses) > 30  # the scan sees the code (a broken walk would pass vacuously)
    missing = sorted({f"{mod.path.relative_to(REPO)}:{line} trt.{'.'.join(chain)}"
                      for mod, line, chain, guarded in accesses
                      if not guarded and any(not is_registered(version, p) for p in chain)})
    assert not missing, f"TensorRT {version} registers none of: " + "; ".join(missing)


def test_the_guard_scan_sees_a_guard_and_its_absence(tmp_path):
    """The scanner itself: an unguarded chain is reported, hasattr / version / caller guards are seen."""
    src = tmp_path / "m.py"
    src.write_text(
        "def a(trt):\n    return trt.BuilderFlag.FP16\n"
        "def b(trt):\n    if hasattr(trt.BuilderFlag, 'FP16'):\n        return trt.BuilderFlag.FP16\n"
        "def c(trt):\n    return has_weak_typing(trt) and trt.BuilderFlag.FP16\n"
        "def d(trt):\n    return trt.IProgressMonitor\n"
        "def e(trt):\n    if hasattr(trt, 'IProgressMonitor'):\n        d(trt)\n")
    mod = _Module(src)
    found = {}
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Attribute) and not isinstance(mod.parent.get(node), ast.Attribute) and _chain(node):
            fn = next(p for p in _ancestors(mod, node) if isinstance(p, ast.FunctionDef)).name
            found[fn] = found.get(fn, False) or _guarded([mod], mod, node, set(_chain(node)))
    assert found == {"a": False, "b": True, "c": True, "d": True}


def _ancestors(mod, node):
    while node in mod.parent:
        node = mod.parent[node]
        yield node


# ----------------------------------------------------------------------------- the fake

def _tiny_onnx():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["image"], ["depth"], name="relu")], "g",
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 3, 4, 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _fake_surface(trt):
    """(owner, name) of everything the fake offers: module attributes, enum members, and the public
    attributes of every object a build and a run hand out."""
    logger = trt.ILogger()
    logger.log = lambda *a: None
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    trt.OnnxParser(network, logger).parse(_tiny_onnx())
    config = builder.create_builder_config()
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    objects = {"Builder": builder, "Network": network, "Layer": network.get_layer(0),
               "Tensor": network.get_layer(0).get_output(0), "Config": config, "Engine": engine,
               "Context": engine.create_execution_context(), "Inspector": engine.create_engine_inspector(),
               "Parser": trt.OnnxParser(network, logger), "Runtime": trt.Runtime(logger), "ILogger": logger,
               "TimingCache": config.create_timing_cache(b"")}
    if hasattr(trt, "IProgressMonitor"):
        objects["IProgressMonitor"] = trt.IProgressMonitor()
    surface = set()
    for name, value in vars(trt).items():
        surface.add(("trt", name))
        if type(value).__name__ == "SimpleNamespace":
            surface |= {(name, member) for member in vars(value)}
    for owner, obj in objects.items():
        names = set(dir(type(obj))) | set(getattr(obj, "__dict__", {})) | set(getattr(type(obj), "__slots__", ()))
        surface |= {(owner, n) for n in names if not n.startswith("_")}
    return {(owner, n) for owner, n in surface if n not in FAKE_INTERNAL and not n.startswith("_")} \
        | {("trt", "__version__")}


@pytest.mark.parametrize("version", sorted(WHEELS))
def test_the_fake_offers_nothing_the_real_module_lacks(version):
    _need(version)
    surface = _fake_surface(make_fake_tensorrt(version))
    assert len(surface) > 40
    extra = sorted(f"{owner}.{name}" for owner, name in surface if not is_registered(version, name))
    assert not extra, f"the fake of TensorRT {version} offers what {version} does not register: {', '.join(extra)}"


def test_the_fake_of_11_refuses_what_tensorrt_11_removed():
    trt = make_fake_tensorrt("11.4.0")
    for owner, name in (("BuilderFlag", "FP16"), ("BuilderFlag", "OBEY_PRECISION_CONSTRAINTS"),
                        ("BuilderFlag", "PREFER_PRECISION_CONSTRAINTS"), ("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH")):
        with pytest.raises(AttributeError):
            getattr(getattr(trt, owner), name)
    logger = trt.ILogger()
    logger.log = lambda *a: None
    network = trt.Builder(logger).create_network(0)
    trt.OnnxParser(network, logger).parse(_tiny_onnx())
    layer = network.get_layer(0)
    assert not hasattr(layer, "precision") and not hasattr(layer, "set_output_type")
