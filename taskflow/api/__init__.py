"""The REST API (aiohttp), seed-compatible under /api/v1."""
