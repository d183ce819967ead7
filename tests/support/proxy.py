"""Test support: proxy (fixtures)."""
