"""Lambda entry points: each adapts one kind of event to a call into ``core``."""
