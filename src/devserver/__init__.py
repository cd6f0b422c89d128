"""Local development server: the Lambda handler behind HTTP, AWS emulated by moto."""
