"""python/README.md's notebook session runs: every `python` block, in
order, in one namespace, from a scratch directory where `datasets/` is the
repository's. Its output is not compared (it would drift with the rules);
its assertions and any exception fail the test."""

import contextlib
import io
import os
import re

from conftest import ROOT

README = ROOT / "python" / "README.md"


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_readmes_python_blocks_run(tmp_path, monkeypatch):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 8, "the README's session should not go missing"
    (tmp_path / "datasets").symlink_to(ROOT / "datasets")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    out = io.StringIO()
    for i, block in enumerate(blocks, 1):
        with contextlib.redirect_stdout(out):
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
    printed = out.getvalue()
    # What the blocks print is the engine's: the explanation's and the
    # diff's text, the error's message.
    assert "no such tier (tiers: high, medium, low)" in printed
    assert namespace["x"].text in printed and namespace["d"].text in printed
    assert (tmp_path / "alerts.jsonl").read_bytes().count(b"\n") == namespace["alerts"].num_rows
    assert os.path.islink(tmp_path / "datasets")
