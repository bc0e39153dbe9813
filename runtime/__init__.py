"""What every process shares: settings from the environment and the connection to Temporal."""
