"""The transport-free core: domain types, the state machine, kinds, use cases and errors."""
