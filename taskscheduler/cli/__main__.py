"""`python -m taskscheduler.cli`: taskctl."""

from taskscheduler.cli import main

main()
