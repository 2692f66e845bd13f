"""The `trm-edge` commands: options in, library calls out. Each composes the stages it drives."""
