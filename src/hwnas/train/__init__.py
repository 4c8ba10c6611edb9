"""Trainers: how a family's super-network learns a task. Sandwich rule and progressive
shrinking today; every trainer works through the family and task contracts only."""

from hwnas.train.sandwich import SandwichTrainer, resolve_settings

__all__ = ["SandwichTrainer", "resolve_settings"]
