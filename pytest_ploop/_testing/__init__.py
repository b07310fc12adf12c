"""The pytest side: test items as engine tasks, report replay, crash reports."""
