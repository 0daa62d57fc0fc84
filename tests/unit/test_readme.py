"""The README documents every setting and links only to files that exist."""

from __future__ import annotations

import re
from pathlib import Path

from taskflow.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = [f"TASKFLOW_{name.upper()}" for name in Settings.model_fields if f"TASKFLOW_{name.upper()}" not in README]
    assert not missing, f"README's configuration table lacks {missing}"


def test_relative_links_point_at_files() -> None:
    targets = re.findall(r"\]\((?!https?://|#)([^)#]+)", README)
    assert targets
    broken = [target for target in targets if not (REPO / target).exists()]
    assert not broken, f"README links to missing files: {broken}"
