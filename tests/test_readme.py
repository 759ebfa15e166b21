"""README.md as a newcomer reads it: short, its architecture table current, its links and
commands real.

Oracles: the registry (``cnn_models.list_models``) and the closed forms for the table (the
same generator ``cnn-conformance models --markdown`` runs, so a model added without
regenerating the README fails here); the file system for links; the CLI's own parser for the
commands the README shows.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cnn_models import list_models
from conformance.cli import build_parser, main
from conformance.commands.models import BEGIN, END, embed, markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LIMIT_BYTES = 9 * 1024  # a README read in two minutes


def test_readme_is_short() -> None:
    assert README.stat().st_size <= LIMIT_BYTES, f"README.md is {README.stat().st_size:,} bytes (limit {LIMIT_BYTES:,})"


def test_architecture_table_is_current() -> None:
    text = README.read_text()
    current = embed(text, markdown_table(list_models()))
    assert current is not None, f"README.md has no {BEGIN} ... {END} block"
    assert current == text, "README.md's architecture table is stale: run `cnn-conformance models --markdown README.md`"
    for name in list_models():
        assert f"| {name} |" in text, name


def test_every_relative_link_resolves() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def _commands() -> list[list[str]]:
    """Each ``cnn-conformance ...`` line of the README's code blocks, as argv after the program."""
    out = []
    for line in README.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("cnn-conformance "):
            out.append(shlex.split(line)[1:])
    return out


def test_the_readme_shows_commands() -> None:
    assert len(_commands()) >= 8


@pytest.mark.parametrize("argv", _commands(), ids=[" ".join(a) for a in _commands()])
def test_every_command_the_readme_shows_parses(argv: list[str]) -> None:
    # the subcommand and every option it is shown with exist and take the values shown
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


def test_a_command_with_an_unknown_option_does_not_parse() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check", "resnet50", "--no-such-option"])


def test_markdown_is_embedded_between_the_markers_or_written_whole(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{BEGIN}\nold table\n{END}\nafter\n")
    assert main(["models", "--arch", "cifar_plain20", "--markdown", str(doc)]) == 0
    lines = doc.read_text().splitlines()
    assert lines[:2] == ["intro", BEGIN] and lines[-2:] == [END, "after"]
    # He et al. 2016 Table 6: plain-20 has the parameters of ResNet-20 (0.27M); exact count by closed form
    assert "| cifar_plain20 | 269,722 |" in doc.read_text() and "old table" not in doc.read_text()
    whole = tmp_path / "new.md"
    assert main(["models", "--arch", "vgg16", "--markdown", str(whole)]) == 0
    # torchvision VGG16_Weights.IMAGENET1K_V1.meta['num_params']
    assert whole.read_text().startswith("| architecture |") and "| vgg16 | 138,357,544 |" in whole.read_text()
