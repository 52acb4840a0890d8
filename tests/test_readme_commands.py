"""The README's first two commands are what scripts/fresh_clone_check.sh runs and what CI runs.

A fresh clone must pass exactly the commands a new user reads first, so the check script and
.ci/run may not drift from them. Cheap: nothing is installed or trained here.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The lines of the README's first fenced code block, less their comments."""
    block = re.search(r"^```[^\n]*\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    assert block, "README.md has no code block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_the_main_and_the_test_command():
    assert readme_commands() == ["bash scripts/quickstart.sh", "bash scripts/test.sh"]
    for cmd in readme_commands():
        assert (ROOT / cmd.split()[1]).is_file(), f"README's {cmd!r} names a missing script"


def test_fresh_clone_check_runs_the_readme_commands():
    r = subprocess.run(["bash", str(ROOT / "scripts" / "fresh_clone_check.sh"), "--print"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == readme_commands()
    r = subprocess.run(["bash", str(ROOT / "scripts" / "fresh_clone_check.sh"), "--print", "--main-args", "--steps 2"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines() == [readme_commands()[0] + " --steps 2", readme_commands()[1]]


def test_ci_runs_the_readme_test_command():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == [readme_commands()[1]], f".ci/run runs {commands}, the README says {readme_commands()[1]!r}"
