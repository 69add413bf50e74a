"""Hooks: one per API dialect, all implementing :class:`~airflow_bpm_provider.hooks.base.BpmHook`."""
