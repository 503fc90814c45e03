"""A bare install (``pip install vision-backbones``: torch + safetensors, no ``[cli]`` extra) runs ``backbones``.

``backbones table`` once failed with ``ModuleNotFoundError: No module named 'rich'``. Without rich
it prints the same table as plain text; a command that needs an extra says which, in one line.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# a Python without rich: every import of rich or rich.* fails as on a bare install
NO_RICH = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoRich(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "rich" or name.startswith("rich."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NoRich())
    import vision_backbones.cli as cli
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def test_no_module_imports_rich_when_loaded() -> None:
    """rich is imported inside the functions that draw (a bare install imports every module without it)."""
    import ast
    from pathlib import Path

    import vision_backbones

    root = Path(vision_backbones.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only; TYPE_CHECKING blocks are never run
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for inner in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []:
                names = (
                    [a.name for a in inner.names]
                    if isinstance(inner, ast.Import)
                    else [inner.module or ""]
                    if isinstance(inner, ast.ImportFrom)
                    else []
                )
                if any(n == "rich" or n.startswith("rich.") for n in names):
                    offenders.append(f"{path.relative_to(root)}:{inner.lineno}")
    assert offenders == []


def test_table_without_rich_prints_plain_text() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_RICH, "table", "resnet18", "--image-size", "32"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Backbones at 1x3x32x32")
    assert lines[1].split()[:3] == ["model", "params", "(M)"]
    row = next(line for line in lines if line.startswith("resnet18 "))
    assert "11.18" in row and "64 64 128 256 512" in row and "tv:resnet18" in row, row
    assert "rich" not in done.stderr


def test_a_command_missing_an_extra_names_it(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from vision_backbones.cli import run_command

    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")] + ["rich"]:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: the import fails

    def uses_rich() -> int:
        from rich.console import Console  # noqa: F401

        return 0

    assert run_command("backbones pick", uses_rich) == 2
    assert run_command("backbones table", uses_rich) == 2
    assert run_command("backbones search", uses_rich) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "backbones pick: error: needs 'rich'; install the extras: pip install 'vision-backbones[bench]'",
        "backbones table: error: needs 'rich'; install the extras: pip install 'vision-backbones[cli]'",
        "backbones search: error: needs 'rich'; install the extras: pip install 'vision-backbones[search]'",
    ]
