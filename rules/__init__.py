"""The bundled default rules (Falco-compatible YAML), shipped as package data ``fcap.rules``."""
