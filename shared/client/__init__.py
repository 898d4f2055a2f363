"""Clients product apps use to call published Temper models."""
