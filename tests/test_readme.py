"""The README's examples stay valid."""

import re
from pathlib import Path

import yaml

from mtlkit.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_config_example_is_a_valid_config(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README should show a config"
    for block in blocks:
        path = tmp_path / "config.yaml"
        path.write_text(block)
        config = load_config(path)
        assert config.to_dict()["data"] == {
            **config.to_dict()["data"],
            **yaml.safe_load(block)["data"],
        }


def test_readme_opens_with_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
