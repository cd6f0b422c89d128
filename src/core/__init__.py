"""Rules, storage and SMS sending behind the reinstall endpoint.

No module in this package depends on API Gateway event shapes. The handlers in
``handler`` adapt events to calls into ``core.service``.
"""
