"""Conversion of official checkpoints into vgz components (by parameter name, never by running their code)."""
