"""fieldfit: a neural-fields reconstruction engine.

The engine (trainer, tasks, checkpoints, CLI) composes the libraries installed beside it:
``fieldfit.fields``, ``fieldfit.renderers``, ``fieldfit.losses`` and ``fieldfit.scenes``.
"""

__version__ = "0.1.0"
