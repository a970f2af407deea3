"""Project hygiene that CI relies on."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Test it", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    ci_lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert command in ci_lines


def test_no_secrets_or_data_files_tracked():
    ignored = (REPO / ".gitignore").read_text()
    for pattern in (".env", "*.parquet", "*.db", "var/"):
        assert pattern in ignored
