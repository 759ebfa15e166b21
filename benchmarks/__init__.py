"""Speed and memory of our oracles and gate, side by side with the tools users would pick instead.

    python -m benchmarks [--quick] [--only NAME[,NAME]] [--reps N] [--out DIR] [--gate] [--suite]
    tox -e bench -- --gate --suite

Comparisons (one module each; ``--only`` takes these names):

1. ``summary``: per-layer summary at 224, ours on meta vs torchsummary 1.5.1 and torchinfo
   (VGG16, ResNet50, GoogLeNet, MobileNet v2).
2. ``flops``: MACs at 224, ours (closed form; FlopCounterMode on meta) vs fvcore, ptflops,
   thop and FlopCounterMode on CPU tensors; each tool's count, its difference from the closed
   form and the ops that make it.
3. ``params``: parameter count by closed form vs a meta-built vs a CPU-built model, for every
   built-in architecture.
4. ``gate``: ``cnn-conformance check NAME`` per architecture and ``check --all``, and
   ``suite``: the test suite under ``pytest -n auto`` and serially. These take minutes, so
   they run only when asked: ``--gate`` / ``--suite``, or by name in ``--only``.
5. ``gradflow``: the default ``cnn-conformance gradflow`` run, and its time against depth
   (8..128) and width (16..128) with fitted log-log exponents.

How it measures (``_worker``, ``_proc``, ``_harness``): one worker process per (comparison,
tool) imports that tool once (the import time and RSS are reported apart and excluded from
every other number), then runs each measurement in a fresh fork, so every measurement is a
cold first call with its own peak RSS. Tools take turns on the same model in each
repetition; the tables show medians over repetitions, ours / theirs ratios, and the peak
memory each measurement added. Command-line runs (gate, suite, the default gradflow run) are
whole processes: wall time and peak RSS, imports included. Targets are evaluated and
reported, never asserted. Results go to ``benchmarks/README.md`` (written by the run) and
``benchmarks/results/`` (``latest.json``, figures), stamped with the date, the machine and the
package versions.
"""

COMPARISONS = ("summary", "flops", "params", "gate", "suite", "gradflow")
# the module that runs each comparison
MODULES = {"summary": "compare_summary", "flops": "compare_macs", "params": "params", "gate": "gate",
           "suite": "suite", "gradflow": "gradflow"}
DEFAULT = ("summary", "flops", "params", "gradflow")  # gate and suite: --gate, --suite or --only
