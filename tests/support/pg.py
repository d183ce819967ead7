"""Test support: pg (fixtures)."""
