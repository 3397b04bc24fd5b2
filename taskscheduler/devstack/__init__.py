"""Developer tooling: embedded servers, the process launcher behind `make run`, code generation."""
