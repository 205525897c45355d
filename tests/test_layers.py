"""The layering of DESIGN.md holds: import-linter contracts, and a torch-free core."""

import configparser
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_FREE = ["refeed", "refeed.types", "refeed.config", "refeed.tasks", "refeed.tasks.oracle", "refeed.store",
              "refeed.store.formats", "refeed.datasets", "refeed.api", "refeed.api.app", "refeed.api.routes.chat",
              "refeed.api.routes.feedback", "refeed.ui.routes"]
TORCH_FREE += [m for m in ("refeed.memory",) if importlib.util.find_spec(m)]  # once the layer lands

# ../shared/DESIGN.md's layer table, "knows about" column (every layer also knows types and config); None: all.
# "knows" is transitive: rewards knows batch, batch knows objectives, so rewards may import objectives.
TABLE: dict[str, set[str] | None] = {
    "types": set(), "config": set(), "store": set(), "datasets": {"store"}, "tasks": set(), "memory": {"store"},
    "models": set(), "objectives": set(), "batch": {"models", "objectives"}, "rewards": {"batch", "models", "tasks"},
    "envs": {"rewards", "tasks", "models"}, "train": {"batch", "objectives", "rewards", "envs", "datasets"},
    "eval": {"batch", "rewards", "envs", "tasks", "memory", "store"},
    "api": {"store", "memory", "models", "ui", "datasets"},  # datasets: the export route (not yet in the table)
    "ui": {"api", "store", "memory", "models", "datasets"}, "pipelines": None, "cli": None,
}


def allowed(layer: str) -> set[str]:
    """What ``layer`` may import: the transitive closure of its row, plus types and config."""
    if TABLE[layer] is None:
        return set(TABLE) - {"cli"}
    out, todo = {"types", "config"}, list(TABLE[layer])
    while todo:
        if (x := todo.pop()) not in out:
            out.add(x)
            todo.extend(TABLE[x] or ())
    return out


def test_the_import_graph_follows_the_layer_table():
    """Every direct import between refeed's top-level packages, lazy ones included, is an edge the table allows;
    every package is in the table (a new layer is placed in DESIGN.md first)."""
    import grimp

    graph = grimp.build_graph("refeed")
    bad = []
    for module in graph.modules:
        src = module.split(".")[1] if module.count(".") else None
        if src in (None, "__main__"):
            continue
        assert src in TABLE, f"refeed.{src} is not in DESIGN.md's layer table"
        for imported in graph.find_modules_directly_imported_by(module):
            dst = imported.split(".")[1] if imported.count(".") else None
            if dst and dst != src and dst not in allowed(src):
                bad.append(f"{module} -> {imported}")
    assert not bad, bad


def test_importlinter_forbids_exactly_what_the_table_does_not_allow():
    """Each layer's contract in .importlinter lists the table's complement, so the two cannot drift apart."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    for layer in TABLE:
        if layer == "cli":
            continue
        section = cfg[f"importlinter:contract:{layer}"]
        upper, lower = [ln.strip() for ln in section["layers"].strip().splitlines()]
        assert lower.strip("()") == layer
        forbidden = {x.strip().strip("()") for x in upper.split(":")}
        assert forbidden == set(TABLE) - allowed(layer) - {layer}, layer


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_modules_do_not_load_torch(module):
    code = f"import sys, {module}; bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", f"{module} pulled in {out.stdout.strip()}"


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is part of the dev extra"
    res = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-2000:]


def test_every_module_imports():
    import importlib
    import pkgutil

    import refeed

    for info in pkgutil.walk_packages(refeed.__path__, "refeed."):
        if ".migrations." in info.name:
            continue  # alembic revision scripts run inside alembic only
        importlib.import_module(info.name)
