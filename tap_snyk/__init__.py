"""tap-snyk: a Singer tap for Snyk audit logs."""
