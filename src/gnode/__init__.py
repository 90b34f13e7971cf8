"""gnode: gated neural ODEs — models, tasks, training and analysis of the study."""

__version__ = "0.1.0"
