"""Test support: autree (fixtures)."""
