"""The images' builder stage, replayed without Docker on exactly the build context they would see.

The files that .dockerignore lets in (and that the builder COPYs) are copied to a temporary
directory and `pip wheel --no-deps .` is run there, as Dockerfile.operator/worker do. The wheel
must build and carry the SQL migrations/queries and Lua scripts, or the image would start and
fail on its first query. (pip fetches the build backend from the package index, as in the image.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.unit.test_dockerfiles import REPO, build_context_files


def test_wheel_builds_from_the_docker_build_context(tmp_path: Path) -> None:
    context = tmp_path / "src"
    for relative in build_context_files():
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)

    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-cache-dir", "--no-deps", "--wheel-dir",
         str(wheels), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = wheels.glob("taskflow-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for path in REPO.joinpath("taskflow").rglob("*"):
        if path.suffix in {".py", ".sql", ".lua"} and "__pycache__" not in path.parts:
            member = path.relative_to(REPO).as_posix()
            assert member in names, f"{member} is missing from the wheel the images install"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "taskflow = taskflow.cli.main:main" in archive.read(entry_points).decode()
