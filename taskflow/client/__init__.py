"""Python client of the REST API: `AsyncClient` (aiohttp) and `Client` (the same, blocking).

    async with AsyncClient("http://localhost:8080") as tf:
        run_id = await tf.submit_dag({"steps": [...], "edges": [...]})
        run = await tf.wait_dag(run_id)
"""

from taskflow.client.async_client import ApiError, AsyncClient, Unauthenticated, token_from_environment
from taskflow.client.sync_client import Client

__all__ = ["ApiError", "AsyncClient", "Client", "Unauthenticated", "token_from_environment"]
