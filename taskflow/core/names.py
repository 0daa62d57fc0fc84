"""Patterns every name must match before it reaches a Redis key, a SQL row or a Kubernetes label."""

import re

QUEUE_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
TASK_TYPE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
STEP_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
