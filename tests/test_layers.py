"""The house's layers, read from every import in the code (function-level ones too): each layer
imports only those below it, and no two modules import each other, directly or round a loop.

    models  <-  pipeline, export  <-  the jobs (train, exporting, scoring, config, ...)  <-  tools  <-  commands, cli
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: folder -> the import name it installs as (pyproject.toml's package-dir)
FOLDERS = {"models": "apt_video.models", "pipeline": "apt_video.pipeline", "export": "apt_video.export",
           "apt_video": "apt_video"}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[1:2] and parts[1] in ("models", "pipeline", "export", "tools", "commands", "cli"):
        return parts[1]
    return "jobs"


#: what each layer may import (besides itself)
ALLOWED = {"models": set(), "pipeline": {"models"}, "export": {"models"}, "jobs": {"models", "pipeline", "export"},
           "tools": {"models", "pipeline", "export", "jobs"},
           "commands": {"models", "pipeline", "export", "jobs", "tools"},
           "cli": {"models", "pipeline", "export", "jobs", "tools", "commands"}}


def modules() -> dict[str, Path]:
    found = {}
    for folder, name in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([name, *parts])] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The apt-video modules ``module`` imports (a package's import of one of its names counts as its ``__init__``)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in known and m != module}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imports(m, p, set(found)) for m, p in found.items()}


def test_each_layer_imports_only_those_below_it():
    wrong = [f"{m} -> {t}" for m, targets in graph().items() for t in targets
             if layer(t) != layer(m) and layer(t) not in ALLOWED[layer(m)]]
    assert not wrong, wrong


def test_no_import_circles():
    g = graph()
    faces = {m for m in g if modules()[m].name == "__init__.py"}  # a package's face hands its names on
    edges = {m: {t for t in ts if t not in faces} for m, ts in g.items() if m not in faces}
    state, loops = {}, []

    def visit(m, trail):
        state[m] = "open"
        for t in edges.get(m, ()):
            if state.get(t) == "open":
                loops.append(trail[trail.index(t):] + [t])
            elif t not in state:
                visit(t, trail + [t])
        state[m] = "done"

    for m in edges:
        if m not in state:
            visit(m, [m])
    assert not loops, loops
