"""``reinstall-send``: send reinstall SMS to the numbers of a CSV file."""
