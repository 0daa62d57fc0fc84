"""Shared vocabulary of Taskflow: models, DAG validation, settings and errors.

Everything else imports this package; it imports nothing else of ours.
"""
