"""One module per target; each is a ConfigurableResource with an idempotent write of a window."""
