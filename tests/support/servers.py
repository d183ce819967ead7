"""Test support: servers (fixtures)."""
