"""One blueprint per resource; each module names its PREFIX under /api/v1."""
