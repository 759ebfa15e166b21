"""An example third-party package: LeNet-5 registered through cnn-conformance's entry point.

Importing this package registers nothing; cnn-conformance calls ``lenet.specs`` (the entry
point) the first time ``cnn_models.list_models()`` or ``get_spec()`` runs.
"""
