"""The catalogue's fidelity to the tutorial: every section covered, credit where it is due, and the
tutorial's models reproducing its four printed torchsummary tables.

Oracles: ``torchsummary.summary`` 1.5.1 run on CPU (its printed text) against the tables as the
tutorial publishes them (conformance/claims/tutorial_tables/*.txt, whitespace runs collapsed to
one space, as the tutorial's text has them); the tutorial's code as facts (module names and
classes of its MobileNet: ``conv1``, ``bn1``, ``layers`` of ``Block``, ``avgpool``, ``linear``,
``F.relu`` instead of ReLU modules).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision
from torchsummary import summary as torchsummary

from conformance.claims import CLAIMS
from conformance.claims.claim import TUTORIAL
from conformance.claims.exhibits import Block, TutorialMobileNet, TutorialVGG
from conformance.claims.sections import NOT_JUDGED, SECTIONS, Unjudged
from conformance.claims.tables import TABLES, collapse, parse, printed

FIXTURES = Path(__file__).resolve().parents[1] / "conformance" / "claims" / "tutorial_tables"

# what the tutorial summarises for each table: its own classes, torchvision's ResNets (its listing)
MODELS: dict[str, Callable[[], nn.Module]] = {
    "vgg16": TutorialVGG,
    "resnet18": lambda: torchvision.models.resnet18(),
    "resnet50": lambda: torchvision.models.resnet50(),
    "mobilenet": TutorialMobileNet,
}


# --- coverage and credit -----------------------------------------------------------------------------


def test_every_section_has_a_claim_or_a_reason() -> None:
    missing = [s for s in SECTIONS
               if not any(c.section == s for c in CLAIMS) and not any(u.section == s for u in NOT_JUDGED)]
    assert not missing, f"sections of the tutorial with no claim and no reason for none: {missing}"


def test_sections_are_the_tutorials_and_unique() -> None:
    assert len(set(SECTIONS)) == len(SECTIONS)
    assert {c.section for c in CLAIMS if c.section} <= set(SECTIONS)
    with pytest.raises(ValueError, match="unknown section"):
        Unjudged("Appendix", "a statement", "a reason")
    assert all(u.statement and u.reason for u in NOT_JUDGED)


def test_only_the_tutorials_claims_are_credited_to_it() -> None:
    for c in CLAIMS:
        if c.section is None:
            assert c.source != TUTORIAL and "tutorial" not in c.source.lower(), (c.id, c.source)
        else:
            assert c.source == TUTORIAL, (c.id, c.source)
            assert c.basis in ("stated", "implied"), c.id


def test_the_catalogue_lists_the_tutorials_claims_in_section_order() -> None:
    order = [SECTIONS.index(c.section) for c in CLAIMS if c.section]
    assert order == sorted(order)
    first_other = next(i for i, c in enumerate(CLAIMS) if c.section is None)
    assert all(c.section is None for c in CLAIMS[first_other:])


def test_a_recorded_value_cites_its_evidence() -> None:
    from conformance.claims.records import RECORDS, record

    assert all(r.citation for r in RECORDS.values())
    with pytest.raises(KeyError, match="no record 'nope'"):
        record("nope")


# --- the tutorial's printed tables ---------------------------------------------------------------------


def torchsummary_text(model: nn.Module) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        torchsummary(model, (3, 224, 224), device="cpu")
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_tutorials_model_prints_its_table_byte_for_byte(name: str) -> None:
    """torchsummary's output for the exhibit, whitespace collapsed as the tutorial's text has it,
    equals the stored table, MB lines included."""
    torch.manual_seed(0)
    with torch.no_grad():
        text = torchsummary_text(MODELS[name]())
    stored = (FIXTURES / f"{name}.txt").read_bytes()
    assert (collapse(text) + "\n").encode("utf-8") == stored


def test_every_table_has_its_model_and_file() -> None:
    assert sorted(t.name for t in TABLES) == sorted(MODELS) == sorted(p.stem for p in FIXTURES.glob("*.txt"))


def test_printed_tables_parse_into_rows_totals_and_mb_lines() -> None:
    vgg = printed("vgg16")
    assert vgg.rows[0] == "Conv2d-1 [-1, 64, 224, 224] 1,792" and vgg.rows[-1] == "Linear-39 [-1, 1000] 4,097,000"
    assert vgg.totals == {"Total params": 138_357_544, "Trainable params": 138_357_544, "Non-trainable params": 0}
    assert vgg.mb["Estimated Total Size (MB)"] == 747.15
    assert len(printed("mobilenet").rows) == 69 and printed("mobilenet").mb["Forward/backward pass size (MB)"] == 386.72


def test_parse_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="no 'Label-N"):
        parse("nothing here")
    with pytest.raises(ValueError, match=r"no 'Forward/backward pass size \(MB\):' line"):
        parse("Conv2d-1 [-1, 1] 2 Total params: 2 Trainable params: 2 Non-trainable params: 0 Input size (MB): 0.0")


# --- the tutorial's MobileNet as its code has it ----------------------------------------------------------


def test_tutorial_mobilenet_has_the_tutorials_modules_and_no_relu_module() -> None:
    with torch.device("meta"):
        model = TutorialMobileNet()
    names = {n for n, _ in model.named_children()}
    assert names == {"conv1", "bn1", "layers", "avgpool", "linear"}
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())  # F.relu, as the tutorial calls it
    blocks = list(model.layers)
    assert len(blocks) == 13 and all(type(b) is Block for b in blocks)
    assert {n for n, _ in blocks[0].named_children()} == {"conv1", "bn1", "conv2", "bn2"}
    assert model.conv1.stride == (1, 1) and model.conv1.padding == (0, 0)  # Conv2d(3, 32, 3, stride=1)
    assert isinstance(model.avgpool, nn.AvgPool2d) and model.linear.in_features == 7 * 7 * 1024


def test_tutorial_mobilenet_applies_relu_after_each_bn() -> None:
    block = Block(2, 3).double().eval()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x))))))
        assert torch.equal(block(x), want)
