"""The layering of DESIGN.md holds: import-linter contracts, and a torch-free core."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_FREE = ["refeed", "refeed.types", "refeed.config", "refeed.tasks", "refeed.tasks.oracle", "refeed.store",
              "refeed.store.formats", "refeed.datasets", "refeed.api", "refeed.api.app", "refeed.api.routes.chat",
              "refeed.api.routes.feedback", "refeed.ui.routes"]


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
