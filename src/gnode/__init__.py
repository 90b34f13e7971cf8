"""gnode: gated neural ODEs — models, tasks, training and analysis of the study.

The public API, imported on first use (``import gnode`` stays light, and a job's code hash —
:mod:`gnode.codegraph` — counts only the modules it really runs)::

    import gnode
    model = gnode.RecurrentEnsemble(gnode.ModelSpec("gnode", n_input=3, n_hidden=6, n_output=3), seeds=[0, 1])
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it (gnode.codegraph reads it to follow
# ``from gnode import name``: keep it a dict literal of strings)
_LAZY = {
    "ModelSpec": "gnode.models",
    "RecurrentEnsemble": "gnode.models",
    "parameter_count": "gnode.models",
    "save_model": "gnode.models",
    "load_model": "gnode.models",
    "FitSettings": "gnode.training",
    "SequenceData": "gnode.training",
    "fit": "gnode.training",
    "Config": "gnode.config",
    "ConfigError": "gnode.strict",
    "validate_config": "gnode.config",
    "find_fixed_points": "gnode.fixed_points",
    "read_table": "gnode.io",
    "write_table": "gnode.io",
    "read_provenance": "gnode.io",
    "code_hash": "gnode.codegraph",
    "flipflop": "gnode.tasks.flipflop",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if _LAZY[name].endswith("." + name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gnode' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
