"""The torchsummary-layout renderer (conformance/summary_table.py) against torchsummary itself.

Oracles: ``torchsummary.summary`` 1.5.1 run on CPU with ``device="cpu"`` (its printed text,
captured from stdout), the tutorial's printed VGG16 table (138,357,544 params,
forward/backward 218.78 MB, params 527.79 MB; ResNet18 11,689,512; ResNet50 25,557,032), and
torchvision's weights meta ``num_params`` read live.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from typing import Any

import pytest
import torch
import torch.nn as nn
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torchsummary import summary as torchsummary

import cnn_models
from conformance.errors import UsageError
from conformance.layer_table import ForwardError
from conformance.summary_table import class_label, summarize, summary_text


def torchsummary_text(model: nn.Module, input_size, **kwargs) -> str:
    """What torchsummary prints (the oracle), run on CPU."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        torchsummary(model, input_size, device="cpu", **kwargs)
    return buf.getvalue()


def assert_same_text(expected: str, got: str) -> None:
    __tracebackhide__ = True
    if expected != got:
        exp, act = expected.splitlines(), got.splitlines()
        first = next((i for i, (a, b) in enumerate(zip(exp, act, strict=False)) if a != b), min(len(exp), len(act)))
        pytest.fail(
            f"summary differs from torchsummary at line {first + 1} "
            f"({len(exp)} lines expected, {len(act)} got):\n"
            f"  expected: {exp[first] if first < len(exp) else '<end>'!r}\n"
            f"  got:      {act[first] if first < len(act) else '<end>'!r}"
        )


def line_value(text: str, prefix: str) -> str:
    return next(line[len(prefix):].strip() for line in text.splitlines() if line.startswith(prefix))


# --- models that exercise torchsummary's quirks ------------------------------------------
class Pair(nn.Module):
    """Returns a tuple: torchsummary prints one [-1, ...] per element."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(x), self.a(x) * 2  # the same Linear twice: two rows


class BiasOnly(nn.Module):
    """A bias but no weight: counted in the total, never trainable."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(5))
        self.extra = nn.Parameter(torch.zeros(7))  # neither weight nor bias: not counted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias + self.extra.sum()


class Quirks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 4)
        self.lin.weight.requires_grad_(False)  # frozen: weight and bias non-trainable
        self.pair = Pair()
        self.b = BiasOnly()
        shared = nn.ReLU()  # reached through two parents: hooked twice
        self.p1 = nn.Sequential(shared)
        self.p2 = nn.Sequential(nn.Identity(), shared)
        self.bn = nn.BatchNorm1d(5, affine=False)
        self.heads = nn.ModuleList([nn.Linear(3, 2), nn.Linear(3, 2, bias=False)])
        self.table = nn.ModuleDict({"tanh": nn.Tanh()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.b(x))
        x = self.p2(self.p1(x))
        y, z = self.pair(self.lin(x))
        y = self.table["tanh"](y + z)
        return self.heads[0](y) + self.heads[1](y)


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward(self, image: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return self.conv(image).mean((1, 2, 3))[:, None] + self.fc(vector.flatten(1))


class Convs(nn.Sequential):
    """A Sequential subclass (like torchvision's Conv2dNormActivation): no row of its own."""


@pytest.mark.parametrize("batch_size", [-1, 1, 5])
def test_quirks_match_torchsummary(batch_size: int) -> None:
    model = Quirks()
    expected = torchsummary_text(model, (5,), batch_size=batch_size)
    assert_same_text(expected, summary_text(model, (5,), batch_size=batch_size))


def test_quirk_rules_spelled_out() -> None:
    """The rules the renderer reproduces, checked row by row (torchsummary's output above)."""
    s = summarize(Quirks, (5,))
    labels = [r.label for r in s.rows]
    assert labels[:2] == ["BiasOnly-1", "BatchNorm1d-2"]
    assert labels.count("ReLU-3") == 1 and sum(lab.startswith("ReLU") for lab in labels) == 4  # 2 calls x 2 hooks
    bias_only = s.rows[0]
    assert (bias_only.params, bias_only.trainable) == (5, None)
    pair = next(r for r in s.rows if r.label.startswith("Pair"))
    assert pair.output_shape == [[-1, 3], [-1, 3]]
    assert s.trainable_params + s.non_trainable_params == s.total_params
    assert s.non_trainable_params == 5 + 4 * 5 + 4  # bias-only module and the frozen Linear


def test_several_inputs_match_torchsummary() -> None:
    model = TwoInputs()
    sizes = [(1, 6, 6), (1, 2, 3)]  # same rank: torchsummary's np.prod fails on ragged sizes
    assert_same_text(torchsummary_text(model, sizes), summary_text(model, sizes))


@st.composite
def small_cnns(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, int, int]]:
    size = draw(st.integers(8, 24))
    c = draw(st.integers(1, 4))
    layers: list[nn.Module] = []
    h = size
    for _ in range(draw(st.integers(1, 4))):
        out = draw(st.integers(1, 6))
        k = draw(st.sampled_from([1, 3]))
        block: list[nn.Module] = [nn.Conv2d(c, out, k, padding=k // 2, bias=draw(st.booleans()))]
        if draw(st.booleans()):
            block.append(nn.BatchNorm2d(out))
        block.append(draw(st.sampled_from([nn.ReLU, nn.ReLU6, nn.Hardswish]))())
        layers.append(Convs(*block) if draw(st.booleans()) else nn.Sequential(*block))
        c = out
        if h >= 4 and draw(st.booleans()):
            pool = draw(st.sampled_from([nn.MaxPool2d, nn.AvgPool2d]))
            layers.append(pool(2, ceil_mode=draw(st.booleans())))
            h = (h + 1) // 2
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, draw(st.integers(1, 5))))
    return nn.Sequential(*layers, head), (layers[0][0].in_channels, size, size)


@given(small_cnns())
def test_random_cnns_match_torchsummary(case: tuple[nn.Module, tuple[int, int, int]]) -> None:
    model, size = case
    assert_same_text(torchsummary_text(model, size), summary_text(model, size))


# --- the four models of the tutorial/issue, torchvision's builders ----------------------
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_torchvision_models_match_torchsummary(name: str) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name)  # one build: torchsummary on CPU, ours on meta
    assert_same_text(torchsummary_text(model, (3, 224, 224)), summary_text(model, (3, 224, 224)))


@pytest.mark.slow
def test_vgg16_matches_torchsummary() -> None:
    model = torchvision.models.vgg16()
    expected = torchsummary_text(model, (3, 224, 224))
    assert_same_text(expected, summary_text(model, (3, 224, 224)))


def test_vgg16_tutorial_figures_on_meta() -> None:
    """The tutorial's printed VGG16 table: 138,357,544 params, 218.78 MB, 527.79 MB."""
    text = summary_text(torchvision.models.vgg16, (3, 224, 224))
    assert line_value(text, "Total params:") == "138,357,544"
    assert line_value(text, "Trainable params:") == "138,357,544"
    assert line_value(text, "Forward/backward pass size (MB):") == "218.78"
    assert line_value(text, "Params size (MB):") == "527.79"
    assert line_value(text, "Input size (MB):") == "0.57"  # 3*224*224*4 B = 0.574 MB


@pytest.mark.parametrize(("name", "tutorial"), [("resnet18", 11_689_512), ("resnet50", 25_557_032)])
def test_resnet_totals_tutorial_and_torchvision_weights_info(name: str, tutorial: int) -> None:
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
    s = summarize(lambda: torchvision.models.get_model(name), (3, 224, 224))
    assert s.total_params == tutorial == meta


# --- our own models, once registered ---------------------------------------------------


# resnet18 and mobilenet_v2 built for real; for resnet50 and vgg16 the same follows from the
# torchvision tests above and test_our_models_table_equals_torchvision_table below
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_our_models_match_torchsummary(name: str) -> None:
    spec = cnn_models.get_spec(name)
    torch.manual_seed(0)
    model = spec.build()
    size = tuple(spec.input_size)
    assert_same_text(torchsummary_text(model, size), summary_text(model, size))


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet50", "mobilenet_v2"])
def test_our_models_table_equals_torchvision_table(name: str) -> None:
    """Same rows (labels, shapes, params, trainable flags) as torchvision's model, both on meta:
    the table torchsummary prints is made of these, and for torchvision's models it is checked
    against torchsummary itself above."""
    spec = cnn_models.get_spec(name)
    ours = summarize(spec.build, (3, 224, 224))
    theirs = summarize(lambda: torchvision.models.get_model(spec.torchvision, **spec.torchvision_kwargs), (3, 224, 224))
    def table(s: Any) -> list[tuple[Any, ...]]:
        return [(r.label, r.output_shape, r.params, r.trainable) for r in s.rows]

    assert table(ours) == table(theirs)
    assert ours.total_params == theirs.total_params


# --- behaviour ---------------------------------------------------------------------------
def test_the_callers_model_is_left_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summarize(model, (3, 8, 8), train=True)
    assert not model.training
    assert all(v.device.type == "cpu" and torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_model_on_meta_is_summarized_in_place_and_left_as_it_was() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    table = summarize(model, (3, 8, 8), train=True)
    assert [r.label for r in table.rows] == ["Conv2d-1", "BatchNorm2d-2", "ReLU-3"]
    assert not any(m.training for m in model.modules())
    assert not any(m._forward_hooks for m in model.modules())  # every hook it added is gone
    assert summarize(model, (3, 8, 8), train=True).rows == table.rows  # the same table again: nothing left behind


def test_a_models_own_output_replacing_hook_runs_after_the_row() -> None:
    """The one place the rows may differ from torchsummary's: summarize's hook is global, and
    torch runs global hooks before a module's own, so the row shows the module's own output
    where the model's hook replaces it (torchsummary's hook, registered last, sees the new one)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model[0].register_forward_hook(lambda _m, _i, out: out[:, :2])
    rows = summarize(model, (3, 8, 8)).rows
    assert [r.output_shape for r in rows] == [[-1, 4, 6, 6], [-1, 2, 6, 6]]
    assert "[-1, 2, 6, 6]" in torchsummary_text(model, (3, 8, 8)).splitlines()[3]  # torchsummary's Conv2d-1 row


def test_class_label_is_the_last_dotted_part() -> None:
    class Local(nn.Module):
        pass

    assert class_label(nn.Conv2d(1, 1, 1)) == "Conv2d"
    assert class_label(Local()) == "Local"
    assert class_label(torchvision.models.resnet.BasicBlock(4, 4)) == "BasicBlock"


def test_a_failing_forward_names_the_module() -> None:
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(5, 2)  # expects 5 features, gets 4*6*6

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).flatten(1))

    with pytest.raises(ForwardError, match="'fc' \\(Linear\\)") as info:
        summarize(Bad, (3, 8, 8))
    assert "\n" not in str(info.value)
    assert info.value.where == "fc"
    assert [(r.label, r.name, r.output_shape) for r in info.value.rows] == [("Conv2d-1", "conv", [-1, 4, 6, 6])]


def _args(**kw) -> argparse.Namespace:
    from conformance.commands import summary as cmd

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    argv = [kw.pop("name")] if "name" in kw else []
    for key, value in kw.items():
        if value is True:  # a flag
            argv.append(f"--{key.replace('_', '-')}")
            continue
        argv += [f"--{key.replace('_', '-')}", *([str(v) for v in value] if isinstance(value, tuple) else [str(value)])]
    return parser.parse_args(argv)


def test_command_prints_torchsummarys_text(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    from conformance.commands import summary as cmd

    path = tmp_path / "cand.py"
    path.write_text("import torchvision\ndef build():\n    return torchvision.models.resnet18(num_classes=10)\n")
    assert cmd.run(_args(candidate=f"{path}:build", input_size=(3, 32, 32))) == 0
    got = capsys.readouterr().out
    torch.manual_seed(0)
    assert_same_text(torchsummary_text(torchvision.models.resnet18(num_classes=10), (3, 32, 32)), got)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "resnet18x"}, "unknown architecture 'resnet18x'"),
        ({}, "exactly one"),
        ({"name": "resnet18", "input_size": (0, 32, 32)}, "--input-size"),
    ],
)
def test_command_usage_errors(kw: dict, message: str) -> None:
    from conformance.commands import summary as cmd

    cnn_models.get_spec("resnet18")
    with pytest.raises(UsageError, match=message) as info:
        cmd.run(_args(**kw))
    assert "\n" not in str(info.value)


# --- the closed-form table (summary --closed-form) ---------------------------------------
def _plan(spec, size=(3, 224, 224)):
    from conformance.formulas import spec_plan

    return spec_plan(spec, size)


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "googlenet", "mobilenet_v2"])
def test_closed_form_rows_are_torchvisions_modules(name: str) -> None:
    """Every planned row is the torchvision module of that name: same type, output shape and
    parameters (torchvision's table by ``summarize`` on meta, itself checked against
    torchsummary above); modules called more than once (a shared ReLU) are left out."""
    spec = cnn_models.get_spec(name)
    plan = _plan(spec)
    tv = summarize(lambda: torchvision.models.get_model(spec.torchvision, **spec.torchvision_kwargs), (3, 224, 224),
                   train=False)
    names = [r.name for r in tv.rows]
    by_name = {r.name: r for r in tv.rows if names.count(r.name) == 1}
    parametric = 0
    for layer in plan.layers:
        row = by_name.get(layer.name)
        if row is None:
            assert layer.params == 0, f"{name}: no single torchvision module {layer.name!r} for a layer with parameters"
            continue
        parametric += bool(layer.params)
        assert (row.label.rsplit("-", 1)[0], row.output_shape, row.params) == (
            layer.kind, [-1, *layer.out_shape], layer.params), layer.name
    assert parametric == sum(1 for layer in plan.layers if layer.params) > 0  # every layer with parameters was checked


@pytest.mark.parametrize(("name", "weights"), [("vgg16", "VGG16_Weights"), ("mobilenet_v2", "MobileNet_V2_Weights")])
def test_closed_form_command_totals_are_torchvisions(name: str, weights: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.commands import summary as cmd

    cnn_models.get_spec(name)
    meta = getattr(torchvision.models, weights).IMAGENET1K_V1.meta  # num_params, _ops (GMACs, 3 decimals)
    assert cmd.run(_args(name=name, closed_form=True)) == 0
    text = capsys.readouterr().out
    assert f"Total params: {meta['num_params']:,}\n" in text
    macs = int(text.split("Total MACs per sample: ")[1].split()[0].replace(",", ""))
    assert abs(macs - meta["_ops"] * 1e9) <= 0.0005e9
    assert text.startswith(f"{name}: closed form") and "[-1, 1000]" in text


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "vgg16", "input_size": (3, 16, 16)}, "--closed-form: vgg16 at input"),
    ],
)
def test_closed_form_command_errors(kw: dict, message: str) -> None:
    from conformance.commands import summary as cmd

    cnn_models.get_spec(kw["name"])
    with pytest.raises(UsageError, match=message) as info:
        cmd.run(_args(closed_form=True, **kw))
    assert "\n" not in str(info.value)


def test_closed_form_needs_a_spec(tmp_path) -> None:
    from conformance.commands import summary as cmd

    path = tmp_path / "cand.py"
    path.write_text("import torch.nn as nn\ndef build():\n    return nn.Linear(2, 2)\n")
    with pytest.raises(UsageError, match="--closed-form: the table comes from a registered architecture's config"):
        cmd.run(_args(candidate=f"{path}:build", closed_form=True))
    with pytest.raises(UsageError, match="--eval sets the mode of the meta pass"):
        cmd.run(_args(name="vgg16", closed_form=True, eval=True))
