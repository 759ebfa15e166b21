"""The conformance engine: independent oracles, comparisons, gradient flow, CLI, pytest plugin.

``conformance`` imports ``cnn_models``; never the reverse.
"""
