"""``realsr train`` / ``realsr eval``: architectures, losses, trainer, metrics (not yet implemented)."""
