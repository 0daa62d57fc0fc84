"""Redis: a fast, rebuildable index of what is due. Owns the key layout (`keys`) and the Lua scripts (`lua/`)."""

from taskflow.queue.redis_queue import ClaimResult, RedisQueue, connect_redis

__all__ = ["ClaimResult", "RedisQueue", "connect_redis"]
