"""Side-by-side benchmark of Taskflow against Dramatiq, Celery, RQ and arq (issue 5). See bench/README.md."""
