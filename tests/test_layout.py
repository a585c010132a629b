"""The packages follow the data flow and their imports run one way (docs/architecture.md, "Data flow"): a module
imports only from its own package or from packages below it in LAYERS, so there is no circle between packages."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bottom to top (gpubt.configs is data, not code: it is in no layer)
LAYERS = ["exact", "kernels", "schema", "backend", "market", "data", "strategies", "run", "analysis", "report",
          "backtest", "cli"]


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "kernels":
        return "kernels"
    return rel.parts[1] if len(rel.parts) > 2 else rel.stem


def imports() -> dict:
    """{(importing package, imported package): a `file:line` where it happens}, function-level imports included."""
    found = {}
    files = [*(ROOT / "gpubt").rglob("*.py"), *(ROOT / "kernels").glob("*.py")]
    for path in files:
        src = _package(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "gpubt" and len(parts) > 1 and parts[1] in LAYERS and parts[1] != src:
                    found.setdefault((src, parts[1]), f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_package_is_in_a_layer():
    packages = {_package(p) for p in (ROOT / "gpubt").rglob("*.py")} - {"__init__"}
    assert packages <= set(LAYERS), f"place these in LAYERS: {sorted(packages - set(LAYERS))}"


def test_imports_run_one_way():
    upward = {edge: where for edge, where in imports().items() if LAYERS.index(edge[1]) > LAYERS.index(edge[0])}
    assert not upward, "imports against the data flow (importer -> imported: where): " + "; ".join(
        f"{a} -> {b}: {w}" for (a, b), w in sorted(upward.items()))
