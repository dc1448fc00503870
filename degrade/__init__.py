"""``realsr build-pool`` / ``realsr degrade``: kernel estimation, noise pools, degradation (not yet implemented)."""
