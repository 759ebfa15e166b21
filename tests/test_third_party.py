"""Third-party architectures: a separately installed package is checked by the same gate.

examples/cnn_conformance_example (LeNet-5) is pip-installed into a throwaway directory
(tests/_site.py) and used from subprocesses, so this process's registry is untouched. What
must hold: the entry point its pyproject declares puts ``lenet5`` in ``list_models()``, in
``cnn-conformance models``, ``check lenet5`` and ``check --all`` (and in the pytest plugin's
parametrization: tests/test_plugin.py); the gate checks it against the package's own closed
form (a dotted ``family``); and a plugin that breaks is reported, never swallowed.

Oracles: LeNet-5's 61,706 parameters come from the paper's per-layer counts (LeCun et al.
1998 §II.B: C1 156, C5 48,120, F6 10,164) plus the closed forms of a full C3 (2,416) and a
linear output (850); exit codes and messages are the CLI's documented ones.

The tests that start a subprocess are marked ``integration`` and left out of the default run:
``pytest -m integration tests/test_third_party.py`` runs them.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import tomllib
from pathlib import Path

import pytest
from _site import EXAMPLE, PYTHON, add_distribution, env_with

LENET5_PARAMS = 156 + 16 * (6 * 25 + 1) + 48_120 + 10_164 + (84 * 10 + 10)  # = 61,706, see above


def _run(args: list[str], *sites: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, *args], env=env_with(*sites), capture_output=True, text=True, timeout=timeout)


def _script(code: str, *sites: Path) -> subprocess.CompletedProcess[str]:
    return _run(["-c", textwrap.dedent(code)], *sites)


# A check --all whose built-in architectures are stubbed as conformant, so the test costs
# seconds: what is under test is which names --all checks and its exit code, not the gate.
CHECK_ALL_STUBBED = """
    import sys
    import conformance.check as gate
    from conformance.cli import main
    from conformance.gate_report import Report

    real = gate.check_builtin
    def check_builtin(name, numerics=True):
        print("\\nCHECKED", name, file=sys.stderr)  # after the CLI's "[i/n] name ..." progress
        return real(name) if name == "lenet5" else Report(name, "stub (not checked in this test)")
    gate.check_builtin = check_builtin
    sys.exit(main(["check", "--all", "--jobs", "1"]))
"""


def test_example_declares_the_entry_point() -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["cnn_conformance.architectures"] == {"lenet5": "cnn_conformance_example.lenet:specs"}
    assert "cnn-conformance" in project["dependencies"]


@pytest.mark.integration
def test_installed_package_is_registered(example_site: Path) -> None:
    dist = next(example_site.glob("cnn_conformance_example-*.dist-info"))
    assert "lenet5 = cnn_conformance_example.lenet:specs" in (dist / "entry_points.txt").read_text()
    proc = _script("""
        import json
        import torch
        import cnn_models
        names = cnn_models.list_models()
        spec = cnn_models.get_spec("lenet5")
        out = cnn_models.get_model("lenet5", num_classes=7)(torch.zeros(2, 1, 32, 32))
        print(json.dumps({"names": names, "errors": cnn_models.plugin_errors(), "family": spec.family,
                          "params": spec.expected["params"].value, "out": list(out.shape)}))
    """, example_site)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert "lenet5" in got["names"] and got["names"] == sorted(got["names"])
    assert "resnet50" in got["names"]  # the built-ins are still there
    assert got["errors"] == []
    assert got["family"] == "cnn_conformance_example.formula"
    assert got["params"] == LENET5_PARAMS
    assert got["out"] == [2, 7]


@pytest.mark.integration
def test_models_command_lists_it_with_its_oracle(example_site: Path) -> None:
    proc = _run(["-m", "conformance", "models", "--arch", "lenet5"], example_site)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("lenet5"))
    assert line.split()[:4] == ["lenet5", f"{LENET5_PARAMS:,}", f"{LENET5_PARAMS:,}", "ok"]


@pytest.mark.integration
def test_check_runs_the_full_gate_with_the_packages_closed_form(example_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "lenet5.json"
    proc = _run(["-m", "conformance", "check", "lenet5", "--json", str(out)], example_site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lenet5 vs spec lenet5: CONFORMANT" in proc.stdout
    report = json.loads(out.read_text())[0]
    checks = {c["name"]: c for c in report["checks"]}
    assert {"params", "output_shape", "closed_form_layers", "macs", "init", "finite_grads"} <= set(checks)
    # no torchvision counterpart: no reference to compare outputs with, said as n/a, not dropped
    assert checks.pop("numerics")["status"] == "n/a"
    assert all(c["status"] == "pass" for c in checks.values())
    # two oracles agree on the count: the spec (paper + closed form) and the package's formula
    oracles = {src.split(" (")[0]: value for src, value, _ in checks["params"]["data"]["oracles"]}
    assert oracles == {"spec": LENET5_PARAMS, "closed form from the spec's config": LENET5_PARAMS}
    assert checks["closed_form_layers"]["evidence"] == "5 planned parametric layers"  # c1, c3, c5, f6, output


@pytest.mark.integration
def test_check_all_includes_the_package(example_site: Path) -> None:
    proc = _script(CHECK_ALL_STUBBED, example_site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("CHECKED")]
    assert "lenet5" in checked and checked == sorted(checked)
    assert any(line.split()[:2] == ["lenet5", "conformant"] for line in proc.stdout.splitlines())


# --- plugins that break are reported, never swallowed ------------------------------------------

BROKEN_PLUGINS = {
    # entry point name -> (module source, entry point value, the error plugin_errors() must carry)
    "raises_at_import": (
        "raise ImportError('needs torch>=9')\n",
        "raises_at_import_mod:specs",
        "entry point 'raises_at_import' (raises_at_import_mod:specs) in group cnn_conformance.architectures: "
        "ImportError: needs torch>=9",
    ),
    "incomplete_spec": (
        "from cnn_models import ArchSpec\ndef specs():\n    return [ArchSpec(name='half_net')]\n",
        "incomplete_spec_mod:specs",
        "entry point 'incomplete_spec' (incomplete_spec_mod:specs) in group cnn_conformance.architectures: "
        "SpecError: spec 'half_net' is incomplete: missing field 'family'; missing field 'builder'; "
        "missing field 'paper'; missing field 'torchvision'; missing field 'input_size'; missing field 'init'; "
        "missing field 'expected'; missing field 'config'",
    ),
    "takes_a_builtin_name": (
        "import cnn_models\ndef specs():\n    return cnn_models.get_spec('resnet18').replace(name='resnet50')\n",
        "takes_a_builtin_name_mod:specs",
        "entry point 'takes_a_builtin_name' (takes_a_builtin_name_mod:specs) in group cnn_conformance.architectures: "
        "SpecError: duplicate architecture name 'resnet50': already registered by cnn_models.resnet.resnet50",
    ),
    "returns_junk": (
        "def specs():\n    return 42\n",
        "returns_junk_mod:specs",
        "entry point 'returns_junk' (returns_junk_mod:specs) in group cnn_conformance.architectures: "
        "SpecError: returns_junk_mod:specs returned int; expected an ArchSpec, a list of them, or None",
    ),
    "not_a_spec": (
        "def specs():\n    return ['lenet']\n",
        "not_a_spec_mod:specs",
        "entry point 'not_a_spec' (not_a_spec_mod:specs) in group cnn_conformance.architectures: "
        "SpecError: register_model expects an ArchSpec, got str",
    ),
}


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One distribution per broken plugin, beside the example."""
    site = tmp_path_factory.mktemp("broken-site")
    for ep_name, (source, value, _) in BROKEN_PLUGINS.items():
        (site / f"{value.partition(':')[0]}.py").write_text(source)
        add_distribution(site, f"broken-{ep_name.replace('_', '-')}",
                         {"cnn_conformance.architectures": {ep_name: value}})
    return site


@pytest.mark.integration
def test_plugin_errors_name_each_broken_entry_point(example_site: Path, broken_site: Path) -> None:
    proc = _script("""
        import json
        import cnn_models
        print(json.dumps({"names": cnn_models.list_models(), "errors": cnn_models.plugin_errors()}))
    """, example_site, broken_site)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert sorted(got["errors"]) == sorted(err for _, _, err in BROKEN_PLUGINS.values())
    assert "lenet5" in got["names"]  # a broken neighbour does not take the good plugin down
    assert "half_net" not in got["names"]


@pytest.mark.integration
def test_check_all_reports_a_broken_plugin_and_exits_2(example_site: Path, broken_site: Path) -> None:
    proc = _script(CHECK_ALL_STUBBED, example_site, broken_site)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.splitlines()
    for _, _, message in BROKEN_PLUGINS.values():
        assert f"cnn-conformance check: error: architecture plugin not loaded: {message}" in err
    assert err[-1].startswith(
        f"cnn-conformance check: error: {len(BROKEN_PLUGINS)} architecture plugin(s) failed to load, "
        "so --all did not check their architectures: "
    )
    assert any(line.split()[:2] == ["lenet5", "conformant"] for line in proc.stdout.splitlines())  # the rest still ran


@pytest.mark.integration
def test_plugin_module_may_use_the_registry_while_it_loads(tmp_path: Path) -> None:
    # a plugin deriving its spec from a built-in one calls get_spec() during loading; the
    # registry's lock is re-entrant, so this neither deadlocks nor recurses
    (tmp_path / "derived_mod.py").write_text(textwrap.dedent("""
        import cnn_models
        SPEC = cnn_models.get_spec("resnet18").replace(name="resnet18_copy")
        def specs():
            return SPEC
    """))
    add_distribution(tmp_path, "derived", {"cnn_conformance.architectures": {"derived": "derived_mod:specs"}})
    proc = _script("import cnn_models; "
                   "print(cnn_models.list_models().count('resnet18_copy'), cnn_models.plugin_errors())", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "[]"]
