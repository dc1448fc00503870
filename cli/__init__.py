"""The ``realsr`` command line: one small module per command; no algorithm lives here."""
