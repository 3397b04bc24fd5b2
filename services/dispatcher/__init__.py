"""The dispatcher service: durable timers (run_at, retry backoff) moved to the broker when due."""
