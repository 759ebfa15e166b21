"""A test helper is defined once: no two test modules hold the same top-level function or
class, whatever it is named there (shared helpers live in ``_shared.py``, ``_site.py`` and
``wild/``).

Two definitions are the same when their syntax trees are, once the name and the docstring are
set aside; fixtures and tests (``test_*``, ``Test*``) are not helpers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _is_helper(node: Definition) -> bool:
    if isinstance(node, ast.ClassDef):
        return not node.name.startswith("Test")
    fixture = any("fixture" in ast.unparse(d) for d in node.decorator_list)
    return not node.name.startswith("test_") and not fixture


def _shape(node: Definition) -> str:
    """The definition's syntax tree (signature or bases, decorators, body) without its name
    and docstring."""
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    head: list[ast.AST] = [*node.bases, *node.keywords] if isinstance(node, ast.ClassDef) else [node.args]
    return "\n".join(ast.dump(n) for n in [*head, *node.decorator_list, *body])


def copied_helpers(files: list[Path]) -> list[str]:
    """One line per helper defined in more than one of ``files``, naming every place."""
    places: dict[str, list[str]] = defaultdict(list)
    for path in files:
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, Definition) and _is_helper(node):
                places[_shape(node)].append(f"{path.name}:{node.lineno} {node.name}")
    return [", ".join(p) for p in places.values() if len({q.split(":")[0] for q in p}) > 1]


def test_no_helper_is_defined_twice_across_test_files() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 40
    copies = copied_helpers(files)
    assert not copies, "helpers copied across test files (move each to _shared.py): " + "; ".join(copies)


def test_a_copied_helper_is_found_under_another_name(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text('def _count(m):\n    """Parameters."""\n'
                                        "    return sum(p.numel() for p in m.parameters())\n")
    (tmp_path / "test_b.py").write_text("def _n(m):\n    return sum(p.numel() for p in m.parameters())\n\n"
                                        "def test_x():\n    pass\n")
    (tmp_path / "test_c.py").write_text("def _n(m):\n    return sum(p.numel() for p in m.buffers())\n")
    copies = copied_helpers(sorted(tmp_path.glob("*.py")))
    assert copies == ["test_a.py:1 _count, test_b.py:1 _n"]
