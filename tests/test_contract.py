"""The protobuf contract: buf lint is clean and the generated Python code is current."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

from taskscheduler.devstack.protogen import GENERATED_PACKAGE, ROOT, generate


def test_buf_lint_is_clean() -> None:
    buf = Path(sys.executable).parent / "buf"
    result = subprocess.run(
        [str(buf if buf.exists() else shutil.which("buf")), "lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_is_current(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    committed_dir = ROOT / GENERATED_PACKAGE
    stale = [
        path.name
        for path in fresh
        if not (committed_dir / path.name).exists()
        or not filecmp.cmp(path, committed_dir / path.name, shallow=False)
    ]
    extra = {p.name for p in committed_dir.glob("*.py*")} - {p.name for p in fresh}
    assert not stale and not extra, f"run `make gen`: stale {stale}, extra {sorted(extra)}"
