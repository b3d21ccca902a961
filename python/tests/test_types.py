"""The package ships type information (py.typed, stubs of the extension):
mypy checks code that uses it, and finds its mistakes."""

import subprocess
import sys
from pathlib import Path

import changeling

GOOD = """
import changeling
import pyarrow as pa

alerts: pa.Table = changeling.score("datasets/demo")
scored: changeling.Scored = changeling.score("datasets/demo", stats=True)
skipped: int = scored.stats.skipped["events"]
x: changeling.Explanation = changeling.explain("datasets/demo", "u1")
xs: list[changeling.Explanation] = changeling.explain("datasets/demo", ["u1", "u2"])
report: dict = changeling.eval(alerts, "datasets/demo")
d: changeling.Diff = changeling.diff(alerts, alerts)
text: str = d.text
"""

BAD = """
import changeling

n: int = changeling.score("datasets/demo", stats=True)
changeling.explain("datasets/demo", "u1", window=2)
"""

CONFIG = """
[mypy]
[mypy-pyarrow.*]
ignore_missing_imports = True
"""


def mypy(tmp_path, code):
    (tmp_path / "mypy.ini").write_text(CONFIG)
    (tmp_path / "use.py").write_text(code)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--no-incremental", "use.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def test_the_package_ships_py_typed_and_stubs():
    here = Path(changeling.__file__).parent
    assert (here / "py.typed").exists()
    assert (here / "_native.pyi").exists()


def test_mypy_checks_code_that_uses_the_package(tmp_path):
    good = mypy(tmp_path, GOOD)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = mypy(tmp_path, BAD)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert 'Incompatible types in assignment (expression has type "Scored", variable has type "int")' in bad.stdout
    assert 'No overload variant of "explain" matches argument types "str", "str", "int"' in bad.stdout


def test_the_stubs_name_every_function_of_the_extension():
    import ast

    stub = ast.parse((Path(changeling.__file__).parent / "_native.pyi").read_text())
    named = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {n for n in dir(changeling._native) if not n.startswith("_")}
    assert public == named
