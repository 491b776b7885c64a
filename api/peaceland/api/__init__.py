"""The tenant-management REST API: plans, police forces, their keys and settings."""
