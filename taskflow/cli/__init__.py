"""The `taskflow` command."""
