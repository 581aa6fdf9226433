"""README.md is the model card and README_CN.md its Chinese translation: the same commands and figures."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```\w*\n(.*?)^```", re.S | re.M)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


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


def test_user_facing_commands_use_a_users_data_path():
    """../shared/omniglot, where the repository's own tests keep the data, is named once, as the default."""
    for name in ("README.md", "README_CN.md"):
        text = (REPO / name).read_text()
        assert text.count("../shared/omniglot") == 1, name
    commands = "\n".join(line for block in blocks((REPO / "README.md").read_text()) for line in block)
    assert "--data_path /data/omniglot" in commands and "shared" not in commands
    for readme in (REPO / "checkpoints").glob("*/README.md"):  # the commands that trained and scored each checkpoint
        commands = "\n".join(line for block in blocks(readme.read_text()) for line in block)
        assert "/data/omniglot" in commands and "shared" not in commands, readme
