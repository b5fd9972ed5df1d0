"""The one training loop every family plugs into.

A family contributes a ``Recipe``: its networks, optimizers, schedules and a ``step`` that
yields one loss per optimizer phase. Everything else lives here once: ``config`` (the loop's
settings and a resumed run's agreement with its record), ``loop`` (the ``Trainer``), ``step``
(one optimizer step, and the networks made ready for it), ``distributed`` (several processes
on one run), ``estimate`` (a run's memory and time per step, before it is admitted), and
``translator.events`` (what a run reports). Plugins import what they use from here.
"""

from ..acceleration import adam as adam  # recipes build their optimizers with it
from ..acceleration import autocast as precision
from .config import RESUME_MAY_CHANGE, TrainConfig
from .loop import OnEvent, Trainer
from .recipe import Recipe, halving, linear_decay, set_requires_grad
from .step import prepare_networks, train_step

__all__ = [
    "OnEvent", "RESUME_MAY_CHANGE", "Recipe", "TrainConfig", "Trainer", "adam", "halving", "linear_decay", "precision",
    "prepare_networks", "set_requires_grad", "train_step",
]
