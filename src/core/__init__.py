"""Rules, storage and SMS sending behind the reinstall endpoint.

Nothing in this package knows about API Gateway event shapes: the handlers in
``handler`` adapt events to calls into ``core.service``.
"""
