"""mtlkit: multi-task learning toolkit."""
