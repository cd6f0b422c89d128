"""``reinstall-admin``: operator commands on the service's DynamoDB table."""
