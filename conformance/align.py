"""Pair a candidate's tensors with a reference's by their role in the traced computation.

Names are a shortcut, never a requirement. Both traces (``conformance.trace``) are reduced
to their significant ops, each reading the nearest significant ops before it (glue such as
views, flatten and dropout is seen through). Each graph is then put in a canonical order: a
depth-first walk back from the outputs, visiting an op's inputs in argument order (a
concatenation's parts in concat position), the two operands of a sum or product ordered by
the structure just above them (a few ops deep, so that a difference far upstream does not
reorder every later sum), so that the order in which a model happens to *execute* its
branches does not matter (an Inception module may run branch 4 first). Two models align when
their canonical sequences agree op by op in kind, attributes and the shapes they consume;
each op's tensors are then paired by role (a conv's weight with the conv's weight, a
BatchNorm's running mean with the running mean). Buffers no op reads (BatchNorm's
``num_batches_tracked``) follow the module of a paired tensor.

When the sequences differ, ``Alignment.differences`` says where the computations part: ops
whose own attributes differ ("stem conv: stride (1, 1), reference (2, 2)"), ops one side has
and the other has not, and ops that only inherit a different input shape are not listed.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import Any

from .trace import Op, Trace

__all__ = ["Alignment", "align", "canonical_ops"]

_COMMUTATIVE = {"add", "mul"}
_LOCAL_DEPTH = 6  # ops above an operand that order a sum (a bottleneck branch is 6 deep from its add)


def _graph(trace: Trace) -> tuple[dict[int, list[int]], list[int]]:
    """Significant op -> the significant ops (or -1, the input) it reads, glue seen through;
    and the significant ops behind the outputs."""
    by_index = {op.index: op for op in trace.ops}
    memo: dict[int, list[int]] = {}

    def sources(i: int) -> list[int]:
        if i < 0:
            return [-1]
        op = by_index[i]
        if op.significant:
            return [i]
        if i not in memo:
            memo[i] = [s for j in op.inputs for s in sources(j)]
        return memo[i]

    graph = {op.index: [s for j in op.inputs for s in sources(j)] for op in trace.ops if op.significant}
    return graph, [s for o in trace.outputs for s in sources(o) if s >= 0]


def canonical_ops(trace: Trace) -> list[Op]:
    """The significant ops in canonical (dataflow) order, see the module docstring."""
    by_index = {op.index: op for op in trace.ops}
    graph, outputs = _graph(trace)
    digest: dict[int, str] = {-1: "input"}

    def h(i: int) -> str:
        if i in digest:
            return digest[i]
        stack = [i]
        while stack:  # iterative post-order: deep nets (ResNet-152) exceed Python's recursion
            j = stack[-1]
            todo = [k for k in graph[j] if k not in digest]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            op = by_index[j]
            parts = [digest[k] for k in graph[j]]
            if op.kind in _COMMUTATIVE:
                parts.sort()
            digest[j] = hashlib.blake2b(repr((op.signature(), parts)).encode(), digest_size=12).hexdigest()
        return digest[i]

    local: dict[tuple[int, int], str] = {}

    def near(i: int, depth: int = _LOCAL_DEPTH) -> str:
        """A digest of op ``i`` and the ops up to ``depth`` steps above it: what orders the
        operands of a sum, unchanged by a difference further upstream."""
        if i < 0 or depth == 0:
            return "input" if i < 0 else by_index[i].signature().__repr__()
        key = (i, depth)
        if key not in local:
            parts = [near(k, depth - 1) for k in graph[i]]
            if by_index[i].kind in _COMMUTATIVE:
                parts.sort()
            local[key] = hashlib.blake2b(repr((by_index[i].signature(), parts)).encode(), digest_size=12).hexdigest()
        return local[key]

    order: list[Op] = []
    seen: set[int] = {-1}
    for out in outputs:
        stack: list[tuple[int, bool]] = [(out, False)]
        while stack:
            j, expanded = stack.pop()
            if j in seen and not expanded:
                continue
            if expanded:
                order.append(by_index[j])
                continue
            seen.add(j)
            ins = list(graph.get(j, []))
            if by_index[j].kind in _COMMUTATIVE:
                ins.sort(key=lambda k: (near(k), h(k), k))
            stack.append((j, True))
            stack.extend((k, False) for k in reversed(ins) if k not in seen)
    # ops that reach no output (a head that only runs for its side effects) keep execution order
    order += [op for op in trace.ops if op.significant and op.index not in seen]
    return order


@dataclass
class Difference:
    """Where the two computations part: one op (or a missing one) with both sides' attributes."""

    candidate: Op | None
    reference: Op | None
    attrs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (candidate, reference)
    after: Op | None = None  # for an op the candidate lacks: its op just before the gap

    def describe(self) -> str:
        c, r = self.candidate, self.reference
        if c is not None and r is not None and ({"op", "kind", "fn"} & set(self.attrs)):
            # another kind of op altogether: both sides whole, not attribute by attribute
            return (f"{c.module or '<root>'}: {_short(c)}, where the reference has {_short(r)} "
                    f"(in {r.module or '<root>'})")
        if c is not None and r is not None:
            diff = "; ".join(f"{k} {_v(a)}, reference {_v(b)}" for k, (a, b) in self.attrs.items())
            where = c.module or "<root>"
            ref_where = f" (reference {r.module or '<root>'})" if r.module != c.module else ""
            return f"{where}{ref_where}: {c.kind} {diff}"
        if r is not None:
            gap = f" (after its {self.after.kind} in {self.after.module or '<root>'})" if self.after is not None else ""
            return f"the candidate has no counterpart of the reference's {r.describe()}{gap}"
        assert c is not None
        return f"the candidate's {c.describe()} is not in the reference"


def _short(op: Op) -> str:
    attrs = ", ".join(f"{k}={v}" for k, v in op.attrs.items())
    return f"{op.kind}({attrs})"


def _v(v: Any) -> str:
    return "absent" if v is _ABSENT else str(v)


_ABSENT = object()


@dataclass
class Alignment:
    """The pairing of candidate and reference tensors, or where the two computations part."""

    pairs: dict[str, str]  # candidate state_dict key -> reference key
    candidate_ops: int
    reference_ops: int
    differences: list[Difference] = field(default_factory=list)
    unpaired_candidate: list[str] = field(default_factory=list)
    unpaired_reference: list[str] = field(default_factory=list)
    op_pairs: list[tuple[Op, Op]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # equivalences used (a global AvgPool2d(7), ...)

    @property
    def complete(self) -> bool:
        return not self.differences and not self.unpaired_candidate and not self.unpaired_reference

    @property
    def renamed(self) -> list[tuple[str, str]]:
        return [(c, r) for c, r in self.pairs.items() if c != r]

    @property
    def key_map(self) -> dict[str, str]:
        """Reference key -> candidate key, for copying the reference's tensors across."""
        return {r: c for c, r in self.pairs.items()}

    def describe(self, limit: int = 3) -> str:
        total = len(self.pairs) + len(self.unpaired_candidate)
        text = f"{len(self.pairs)} of {total} tensors paired by role"
        ren = self.renamed
        if ren:
            shown = ", ".join(f"{c} -> {r}" for c, r in ren[:limit])
            text += f"; {len(ren)} renamed ({shown}{', ...' if len(ren) > limit else ''})"
        else:
            text += "; same names"
        return text


def _attr_diff(c: Op, r: Op) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    if c.kind != r.kind:
        out["op"] = (c.kind, r.kind)
    for k in dict.fromkeys([*r.attrs, *c.attrs]):
        a, b = c.attrs.get(k, _ABSENT), r.attrs.get(k, _ABSENT)
        if a != b:
            out[k] = (a, b)
    roles_c, roles_r = [x for x, _ in c.tensors], [x for x, _ in r.tensors]
    if roles_c != roles_r:
        out["tensors"] = (tuple(roles_c), tuple(roles_r))
    return out


def align(candidate: Trace, reference: Trace) -> Alignment:
    """Pair tensors by role (see the module docstring); report where the traces part."""
    cand, ref = canonical_ops(candidate), canonical_ops(reference)
    result = Alignment({}, len(cand), len(ref))
    a = [op.signature() for op in ref]
    b = [op.signature() for op in cand]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            result.op_pairs += list(zip(cand[j1:j2], ref[i1:i2], strict=True))
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            for c, r in zip(cand[j1:j2], ref[i1:i2], strict=True):
                result.differences.append(Difference(c, r, _attr_diff(c, r)))
            continue
        # unequal runs: pair what shares a kind in order, the rest is one-sided
        rs, cs = list(ref[i1:i2]), list(cand[j1:j2])
        while rs and cs:
            if rs[0].kind == cs[0].kind:
                c, r = cs.pop(0), rs.pop(0)
                result.differences.append(Difference(c, r, _attr_diff(c, r)))
            elif len(rs) >= len(cs):
                result.differences.append(Difference(None, rs.pop(0), after=cand[j1 - 1] if j1 else None))
            else:
                result.differences.append(Difference(cs.pop(0), None))
        result.differences += [Difference(None, r, after=cand[j1 - 1] if j1 else None) for r in rs]
        result.differences += [Difference(c, None) for c in cs]
    for c, r in result.op_pairs:
        for (role_c, key_c), (role_r, key_r) in zip(c.tensors, r.tensors, strict=True):
            if role_c != role_r:
                continue
            prev = result.pairs.get(key_c)
            if prev is not None and prev != key_r:  # one tensor in two roles: no unique pairing
                result.differences.append(Difference(c, r, {"tensor": (key_c, f"{prev} and {key_r}")}))
            result.pairs[key_c] = key_r
    for c, r in result.op_pairs:
        if c.note and c.note != r.note:
            result.notes.append(f"{c.module or '<root>'}: {c.note}, taken as the reference's {r.note or r.kind}")
    _pair_unread(candidate, reference, result)
    return result


def _owner(key: str) -> str:
    return key.rpartition(".")[0]


def _pair_unread(candidate: Trace, reference: Trace, result: Alignment) -> None:
    """Tensors no op read (BN's ``num_batches_tracked``, unused heads) follow a paired
    tensor of their module: ``a.num_batches_tracked`` goes with ``a.running_mean``'s partner."""
    module_map: dict[str, str] = {}
    for c, r in result.pairs.items():
        module_map.setdefault(_owner(c), _owner(r))
    taken = set(result.pairs.values())
    for key in candidate.shapes:
        if key in result.pairs:
            continue
        owner, _, leaf = key.rpartition(".")
        partner = f"{module_map[owner]}.{leaf}" if owner in module_map else None
        if partner is not None and partner in reference.shapes and partner not in taken \
                and reference.shapes[partner] == candidate.shapes[key]:
            result.pairs[key] = partner
            taken.add(partner)
        elif leaf != _COUNTER:
            result.unpaired_candidate.append(key)
    result.unpaired_reference = [k for k in reference.shapes if k not in taken and not k.endswith(_COUNTER)]
    # BatchNorm's step counter changes the function only where momentum is None (a running
    # average over all steps); a model written without the buffer is said, not failed
    n = sum(k.endswith(_COUNTER) and k not in taken for k in reference.shapes)
    if n:
        result.notes.append(f"<root>: {n} num_batches_tracked buffer(s) of the reference have no counterpart")


_COUNTER = "num_batches_tracked"
