"""Worker processes: claim tasks, run registered handlers, record results under their fence."""
