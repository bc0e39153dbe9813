"""Every side effect of a journey: sends, profile reads and writes, webhooks."""
