"""The pytest plugin, tested from the outside: ``pytester`` runs pytest in a subprocess.

Each run sees the example third-party package (examples/cnn_conformance_example, LeNet-5)
pip-installed into a throwaway site directory (tests/_site.py), so the runs cover what a
contributor's CI sees: the architecture list from the registry and the entry point, ``--arch``
selection, test ids equal to the names, the gate's failure message for a broken model, and
the loud failure of a broken entry point. Runs are restricted to small models (cifar_resnet20,
lenet5) to stay fast. Oracles: the registry's own sorted list (``cnn_models.list_models()``
in this process, plus the example's one name), and the messages the plugin documents.

Every test here is marked ``integration`` (it starts fresh interpreters importing torch), so
the default run leaves the module out: ``pytest -m integration tests/test_plugin.py`` runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _site import add_distribution

import cnn_models

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration  # every test runs pytest in a fresh interpreter

GATE_TESTS = """
import hypothesis


def test_gate(arch_name, conformance_gate):
    conformance_gate(arch_name)


def test_spec(arch_spec, arch_name):
    assert arch_spec.name == arch_name


def test_tv(tv_arch_name):
    assert tv_arch_name


def test_profile():
    import os
    print("PROFILE", os.environ.get("CNN_CONFORMANCE_PROFILE"), hypothesis.settings.default.derandomize,
          hypothesis.settings.default.max_examples)
"""

BROKEN_CONFTEST = """
import torch.nn as nn

import cnn_models
from cnn_conformance_example.lenet import SPEC, LeNet5


def broken_lenet(*, num_classes=10):
    model = LeNet5(num_classes=num_classes)
    model.c3 = nn.Conv2d(6, 16, 5, bias=False)  # C3 without its biases
    return model


cnn_models.register_model(SPEC.replace(name="broken_lenet", builder=broken_lenet))
"""


@pytest.fixture
def project(pytester: pytest.Pytester, example_site: Path, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project whose subprocesses see the example package installed.

    ``tmp_path / "extra"`` is on the path too, for a test's own (broken) distributions.
    """
    (tmp_path / "extra").mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(example_site), str(tmp_path / "extra")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("CNN_CONFORMANCE_THREADS", "1")
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID",
                "CNN_CONFORMANCE_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(test_archs=GATE_TESTS)
    return pytester


def _collected(result: pytest.RunResult) -> list[str]:
    return [line.strip() for line in result.outlines if "::" in line and not line.startswith(("ERROR", "FAILED"))]


def test_parametrizes_over_every_registered_architecture_in_sorted_order(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--collect-only", "-q", "-p", "no:randomly", "-k", "test_gate")
    result.assert_outcomes()  # collection only
    expected = sorted([*cnn_models.list_models(), "lenet5"])  # this process's registry + the example
    assert _collected(result) == [f"test_archs.py::test_gate[{name}]" for name in expected]


def test_arch_selects_runs_the_gate_and_agrees_across_xdist_workers(project: pytest.Pytester) -> None:
    # two globs (one repeated option, one comma list), two xdist workers, random order
    result = project.runpytest_subprocess(
        "--arch", "cifar_resnet2*", "--arch", "lenet5,cifar_resnet20", "-n", "2", "-p", "randomly",
        "--cnn-profile", "ci", "-rs",
    )
    # test_gate and test_spec for cifar_resnet20 and lenet5; neither has a torchvision
    # counterpart, so test_tv is skipped with a reason that names the selection
    result.assert_outcomes(passed=5, skipped=1)
    result.stdout.fnmatch_lines(
        ["*--arch cifar_resnet2* lenet5 cifar_resnet20 selects no architecture for tv_arch_name*"])
    assert result.ret == 0


def test_failing_contributor_model_fails_the_run_naming_the_layer(project: pytest.Pytester) -> None:
    project.makeconftest(BROKEN_CONFTEST)
    result = project.runpytest_subprocess("--arch", "broken_lenet,lenet5", "-k", "test_gate", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*conformance gate: broken_lenet is not conformant*",
        "*parameters: expected 61,706 (closed form from the spec's config), got 61,690 (-16)*",
        # the closed form names the layer, with expected vs got
        "*c3: expected Conv2d out (16, 10, 10) with 2,416 params (closed form), "
        "got Conv2d out (16, 10, 10) with 2,400*",
        "*FAILED test_archs.py::test_gate[[]broken_lenet[]]*",
    ])


def test_unknown_arch_glob_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--arch", "lenet6")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--arch 'lenet6' matches no registered architecture; close matches: lenet5*"])


def test_unknown_profile_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--cnn-profile", "fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cnn-profile 'fast': expected one of ci, dev, thorough*"])


def test_broken_entry_point_fails_collection_loudly(project: pytest.Pytester, tmp_path: Path) -> None:
    site = tmp_path / "extra"
    (site / "broken_plugin.py").write_text("raise ImportError('broken_plugin needs torch>=9')\n")
    add_distribution(site, "broken-plugin", {"cnn_conformance.architectures": {"broken": "broken_plugin:specs"}})
    result = project.runpytest_subprocess("-k", "test_gate", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection error: nothing ran with a shrunken list
    result.stdout.fnmatch_lines([
        "*cnn-conformance: 1 third-party architecture entry point(s) failed to load*",
        "*entry point 'broken' (broken_plugin:specs) in group cnn_conformance.architectures: "
        "ImportError: broken_plugin needs torch>=9*",
    ])


def test_k_explicit_parametrize_arch_filter_and_profile(project: pytest.Pytester) -> None:
    project.makepyfile(test_more="""
        import pytest

        @pytest.mark.parametrize("arch_name", ["resnet18"])
        def test_explicit(arch_name):
            assert arch_name == "resnet18"

        @pytest.mark.arch_filter(lambda spec: spec.input_size[0] == 1)
        def test_grayscale(arch_name):
            assert arch_name == "lenet5"
    """)
    result = project.runpytest_subprocess(
        "-k", "lenet5 or test_profile or test_explicit", "-p", "no:randomly", "-v", "-s", "--cnn-profile", "ci"
    )
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines_random([
        "*test_archs.py::test_gate[[]lenet5[]] PASSED*",  # -k with the architecture's name
        "*test_archs.py::test_spec[[]lenet5[]] PASSED*",
        "*test_more.py::test_explicit[[]resnet18[]] PASSED*",  # an explicit parametrize wins
        "*test_more.py::test_grayscale[[]lenet5[]] PASSED*",  # the only 1-channel architecture
        "*PROFILE ci True 10*",  # conformance/profiles.py: ci is derandomized, 10 examples
    ])
