"""README.md is the model card and README_CN.md its Chinese translation: the same commands and figures; what a
user reads points to a data folder of their own."""
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```\w*\n(.*?)^```", re.S | re.M)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Where CI finds Omniglot: a folder beside the checkout, which a user's has not.
INTERNAL_DATA = re.compile(r"shared/omniglot")
DOCUMENTS = sorted({REPO / "README.md", REPO / "README_CN.md", *REPO.glob("docs/*.md"), *REPO.glob("checkpoints/**/README.md")})
HELP = sorted(REPO.glob("scripts/run_*_*.sh")) + [REPO / "scripts" / "quickstart.sh"]


def blocks(text):
    """The fenced blocks, each line without its trailing comment (comments are translated)."""
    return [[line.split("  #")[0].rstrip() for line in block.splitlines()] for block in FENCE.findall(text)]


def prose_numbers(text):
    return sorted(NUMBER.findall(re.sub(r"\]\([^)]*\)", "]", FENCE.sub("", text))))


def test_translation_has_the_same_commands_and_figures():
    english, chinese = (REPO / name for name in ("README.md", "README_CN.md"))
    english, chinese = english.read_text(), chinese.read_text()
    assert blocks(chinese) == blocks(english)
    assert prose_numbers(chinese) == prose_numbers(english)
    for text in (english, chinese):
        assert "<!--" not in text  # no placeholder left


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_documents_name_no_repository_internal_data_path(document):
    assert not INTERNAL_DATA.search(document.read_text())


@pytest.mark.parametrize("script", HELP, ids=lambda p: p.name)
def test_script_usage_names_no_repository_internal_data_path(script):
    proc = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    assert not INTERNAL_DATA.search(proc.stdout)


def test_readme_commands_read_the_users_data_folder():
    """Every README command that reads Omniglot is given the folder the README asks the user for."""
    readers = ("omniglot_train.py", "eval.py", "src/data/demo_task.py", "src/data_preprocess.py", "benchmarks/",
               "scripts/quickstart.sh", "scripts/run_")
    lines = [line for block in blocks((REPO / "README.md").read_text()) for line in block]
    reading = [line for line in lines if any(reader in line for reader in readers)]
    assert reading
    for line in reading:
        assert "/data/omniglot" in line, line
