"""The fault suite (`make chaos`): real processes and servers, faults injected while tasks flow."""
