"""Checkpoints as training scripts publish them, loaded into this package's models.

Each file is written in ``tmp_path`` the way its script writes it:

* akamaster/pytorch_resnet_cifar10 (``trainer.py``, ``resnet.py``): ``{'epoch', 'state_dict',
  'best_prec1'}`` of a model wrapped in ``nn.DataParallel`` (every key starts ``module.``),
  whose classifier is named ``linear``; its published ResNet-20 predates torch 0.4.1, so it has
  no ``num_batches_tracked``.
* timm's ``CheckpointSaver`` (``state_dict`` beside ``state_dict_ema``) and torchvision's
  ``references/classification/train.py`` (``model`` beside ``model_ema``): two state_dicts in
  one file.

Oracles: where each checkpoint tensor must arrive is the renaming written out in the test
(``module.`` off, ``linear.`` -> ``fc.``), never read from the loader; every tensor is filled
with its own random values, so a tensor loaded into the wrong place shows. The counts come
from the ResNet-20 layout (He et al. 2016, §4.2, n = 3): a stem conv and BN, 3 stages of 3
blocks of two conv + BN, one fc: 19 convs, 19 BatchNorms (4 tensors each and a
``num_batches_tracked``), 2 fc tensors; 97 tensors without the counters, 116 with them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from cnn_models import get_model
from conformance.errors import CheckpointError
from conformance.loading import load_checkpoint, load_into

BN_LAYERS = 1 + 3 * 3 * 2  # stem + 3 stages x 3 blocks x 2 (He et al. 2016, §4.2)
TENSORS = 19 + 4 * BN_LAYERS + 2  # convs, BatchNorm weight/bias/running_mean/running_var, fc
FC_POSITION = 1 + 4 + 9 * (2 + 2 * 4) + 1  # stem conv, stem BN, 9 blocks, then linear.weight


class _Block(nn.Module):
    """The layout of ``resnet.py``'s ``BasicBlock`` (its option-A shortcut has no tensors)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()


class _ThirdPartyResNet20(nn.Module):
    """The layout of ``resnet.py``'s ``resnet20()``: ``conv1``, ``bn1``, ``layer1..3``, ``linear``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes = [16, 32, 64]
        for s, (c_in, c_out) in enumerate(zip([16, 16, 32], planes, strict=True)):
            blocks = [_Block(c_in if b == 0 else c_out, c_out, 2 if s and b == 0 else 1) for b in range(3)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)


def _filled(module: nn.Module, seed: int) -> nn.Module:
    """Every float tensor random and positive (a valid running_var); counters 1, 2, 3, ..."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, t in enumerate(module.state_dict().values()):
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5 if t.is_floating_point() else torch.tensor(i + 1))
    return module


def _data_parallel(state: dict[str, torch.Tensor], counters: bool) -> dict[str, torch.Tensor]:
    """The keys as ``nn.DataParallel(model).state_dict()`` names them, optionally without counters."""
    return {f"module.{k}": v for k, v in state.items() if counters or not k.endswith("num_batches_tracked")}


def _published(tmp_path: Path, net: nn.Module, counters: bool = False) -> Path:
    """A file as ``trainer.py``'s ``save_checkpoint`` writes it."""
    path = tmp_path / "resnet20.th"
    torch.save({"epoch": 200, "state_dict": _data_parallel(net.state_dict(), counters), "best_prec1": 91.7}, path)
    return path


def _ours(key: str) -> str:
    """Where a third-party key belongs in ``cifar_resnet20``: only the classifier's name differs."""
    return "fc." + key.removeprefix("linear.") if key.startswith("linear.") else key


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_published_resnet20_arrives_whole_and_the_pairing_is_reported(tmp_path: Path) -> None:
    net = _filled(_ThirdPartyResNet20(), seed=0)
    path = _published(tmp_path, net)
    ckpt = load_checkpoint(path)
    assert ckpt.wrapper == "state_dict" and ckpt.ignored == ("epoch", "best_prec1")
    assert len(ckpt) == TENSORS and all(k.startswith("module.") for k in ckpt)

    model = get_model("cifar_resnet20")
    report = load_into(model, ckpt, label=str(path))
    assert report.how == "order and shape"
    assert report.prefix_stripped == "module."
    assert report.renamed == [("linear.weight", "fc.weight"), ("linear.bias", "fc.bias")]
    assert (report.loaded, report.total) == (TENSORS, TENSORS + BN_LAYERS)
    assert len(report.kept_at_model_value) == BN_LAYERS and report.kept_value == 0
    assert report.mapping == [(f"module.{k}", _ours(k)) for k in net.state_dict() if "num_batches" not in k]
    assert report.describe() == (
        f"{TENSORS} of {TENSORS + BN_LAYERS} tensors by order and shape; 2 renamed (linear.weight -> fc.weight, "
        f"linear.bias -> fc.bias); 'module.' prefix stripped; {BN_LAYERS} num_batches_tracked kept at 0 "
        f"(the model's value); from {str(path)!r}, key 'state_dict' (ignored: epoch, best_prec1)"
    )

    ours = model.state_dict()
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert ours[key].item() == 0, key  # a fresh model's counter, kept
        else:
            assert torch.equal(ours[_ours(key)], value), key


def test_counters_follow_their_running_mean_when_the_checkpoint_has_them(tmp_path: Path) -> None:
    net = _filled(_ThirdPartyResNet20(), seed=1)
    model = get_model("cifar_resnet20")
    report = load_into(model, load_checkpoint(_published(tmp_path, net, counters=True)))
    assert report.how == "order and shape" and report.kept_at_model_value == []
    assert (report.loaded, report.total) == (TENSORS + BN_LAYERS, TENSORS + BN_LAYERS)
    ours = model.state_dict()
    assert all(torch.equal(ours[_ours(k)], v) for k, v in net.state_dict().items())


def test_a_data_parallel_checkpoint_of_the_same_model_loads_by_name(tmp_path: Path) -> None:
    source = _filled(get_model("cifar_resnet20"), seed=2)
    path = tmp_path / "dp.pt"
    torch.save(_data_parallel(source.state_dict(), counters=False), path)
    model = get_model("cifar_resnet20")
    report = load_into(model, load_checkpoint(path))
    assert (report.how, report.prefix_stripped, report.renamed) == ("names", "module.", [])
    assert report.kept_at_model_value == [k for k in model.state_dict() if k.endswith("num_batches_tracked")]
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in source.state_dict().items() if "num_batches" not in k)


@pytest.mark.parametrize(("main", "ema"), [("state_dict", "state_dict_ema"), ("model", "model_ema")],
                         ids=["timm-CheckpointSaver", "torchvision-references"])
def test_two_state_dicts_in_one_file_are_refused_until_one_is_named(tmp_path: Path, main: str, ema: str) -> None:
    trained, averaged = _filled(get_model("cifar_resnet20"), seed=3), _filled(get_model("cifar_resnet20"), seed=4)
    path = tmp_path / "two.pth"
    torch.save({"epoch": 90, main: trained.state_dict(), ema: averaged.state_dict()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == (
        f"checkpoint {str(path)!r} holds 2 state_dicts, under {main!r}, {ema!r}; nothing was loaded: "
        f"name the one to read (load_checkpoint(path, wrapper={main!r}))"
    )
    ckpt = load_checkpoint(path, wrapper=ema)
    assert ckpt.wrapper == ema and ckpt.ignored == ("epoch", main)
    model = get_model("cifar_resnet20")
    load_into(model, ckpt)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in averaged.state_dict().items())


@pytest.mark.parametrize("other", [{"arch": "resnet20"}, "resnet20", {}], ids=["mapping-of-text", "text", "empty"])
def test_the_one_mapping_of_tensors_among_the_wrapper_keys_is_read(tmp_path: Path, other: object) -> None:
    path = tmp_path / "one.pth"
    torch.save({"model": other, "state_dict": nn.Linear(2, 3).state_dict(), "optimizer": {"state": {}}}, path)
    ckpt = load_checkpoint(path)
    assert (ckpt.wrapper, ckpt.ignored, sorted(ckpt)) == ("state_dict", ("model", "optimizer"), ["bias", "weight"])


def test_order_and_shape_that_part_are_refused_at_the_first_position(tmp_path: Path) -> None:
    path = _published(tmp_path, _filled(_ThirdPartyResNet20(num_classes=100), seed=5))
    model = get_model("cifar_resnet20")
    before = _snapshot(model)
    with pytest.raises(CheckpointError) as info:
        load_into(model, load_checkpoint(path), label="resnet20.th")
    assert str(info.value) == (
        "resnet20.th (its 'module.' prefix stripped) does not fit CifarResNet, nothing was loaded: "
        "missing keys (2): fc.bias, fc.weight | unexpected keys (2): linear.bias, linear.weight | "
        f"by order and shape: they part at position {FC_POSITION} (counting from 1, num_batches_tracked aside): "
        "checkpoint 'linear.weight' (100, 64) vs model 'fc.weight' (10, 64)"
    )
    assert _unchanged(model, before)


def test_a_key_map_renames_what_the_names_do_not_pair(tmp_path: Path) -> None:
    net = _filled(_ThirdPartyResNet20(), seed=6)
    ckpt = load_checkpoint(_published(tmp_path, net))
    model = get_model("cifar_resnet20")
    key_map = {"module.linear.weight": "fc.weight", "module.linear.bias": "fc.bias"}
    report = load_into(model, ckpt, key_map=key_map)
    assert (report.how, report.prefix_stripped) == ("key_map", "module.")
    assert report.renamed == list(key_map.items())
    assert all(torch.equal(model.state_dict()[_ours(k)], v) for k, v in net.state_dict().items() if "num_b" not in k)


@pytest.mark.parametrize(
    ("key_map", "problem"),
    [
        ({"module.linear.weight": "fc.weight", "module.linear.bias": "fc.bias", "module.bn1.bias": "bn1.weight"},
         "it is not one-to-one: 'module.bn1.weight', 'module.bn1.bias' -> 'bn1.weight' (renamed, or keeping its name)"),
        ({"linear.weight": "fc.weight", "module.linear.bias": "classifier.bias"},
         "it names keys the checkpoint does not have (1): 'linear.weight' (the checkpoint's keys carry the prefix "
         "'module.': key_map names them as stored) | it names keys CifarResNet does not have (1): 'classifier.bias'"),
    ],
    ids=["onto-a-key-that-keeps-its-name", "keys-that-do-not-exist"],
)
def test_a_key_map_that_does_not_fit_is_refused_naming_the_keys(tmp_path: Path, key_map: dict[str, str],
                                                              problem: str) -> None:
    ckpt = load_checkpoint(_published(tmp_path, _filled(_ThirdPartyResNet20(), seed=7)))
    model = get_model("cifar_resnet20")
    before = _snapshot(model)
    with pytest.raises(CheckpointError) as info:
        load_into(model, ckpt, label="resnet20.th", key_map=key_map)
    msg = str(info.value)
    assert msg.startswith("resnet20.th: key_map does not fit, nothing was loaded: "), msg
    assert all(part in msg for part in problem.split("|")), msg
    assert _unchanged(model, before)


def test_a_map_of_two_keys_to_one_is_refused_even_without_other_problems(tmp_path: Path) -> None:
    ckpt = load_checkpoint(_published(tmp_path, _filled(_ThirdPartyResNet20(), seed=8)))
    model = get_model("cifar_resnet20")
    with pytest.raises(CheckpointError) as info:
        load_into(model, ckpt, label="r.th",
                  key_map={"module.linear.weight": "fc.bias", "module.linear.bias": "fc.bias"})
    assert str(info.value) == ("r.th: key_map does not fit, nothing was loaded: it is not one-to-one: "
                               "'module.linear.weight', 'module.linear.bias' -> 'fc.bias'")


def test_one_tensor_of_another_shape_loads_nothing(tmp_path: Path) -> None:
    state = _data_parallel(_filled(get_model("cifar_resnet20"), seed=9).state_dict(), counters=False)
    state["module.layer2.0.bn1.weight"] = torch.ones(33)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state, "epoch": 1}, path)
    model = get_model("cifar_resnet20")
    before = _snapshot(model)
    with pytest.raises(CheckpointError) as info:
        load_into(model, load_checkpoint(path), label="bad.pth")
    assert str(info.value) == (
        "bad.pth (its 'module.' prefix stripped) does not fit CifarResNet, nothing was loaded: "
        "shape mismatches (1): layer2.0.bn1.weight: expected (32,), got (33,)"  # stage 2 is 32 wide (§4.2)
    )
    assert _unchanged(model, before)


def test_the_check_command_names_the_readings_a_checkpoint_cannot_tell_apart(tmp_path: Path, capsys) -> None:
    # option A's zero channels (He et al. 2016 §3.3) go after the input's or on both sides:
    # the same state_dict, so a checkpoint alone cannot say which of the two its model computed
    from conformance.cli import main

    path = _published(tmp_path, _filled(_ThirdPartyResNet20(), seed=3))
    assert main(["check", "cifar_resnet20", "--weights", str(path)]) == 0
    out = capsys.readouterr().out
    weights_line = next(line for line in out.splitlines() if line.strip().startswith("ok   weights"))
    assert "the spec admits readings with this same state_dict" in weights_line
    assert "zeros_split (option_a_pad='split': akamaster/pytorch_resnet_cifar10" in weights_line
