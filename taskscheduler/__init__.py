"""taskscheduler: a distributed task scheduling service (core, adapters and shared code)."""
