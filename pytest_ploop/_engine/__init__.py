"""The engine: runs tasks in worker processes. Never imports pytest."""
