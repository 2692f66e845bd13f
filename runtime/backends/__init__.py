"""The backends that run an export's step, and how `auto` chooses among them (see registry.py)."""
