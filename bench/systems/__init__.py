"""One module per system: its handlers (imported by its worker processes) and its driver-side adapter."""
