"""The kopf operator: thin handlers over pure desired-state builders, server-side apply,
status and events."""
