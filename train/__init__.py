"""Stage placeholder."""
