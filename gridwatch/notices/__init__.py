"""Notices: what customers are told about outages and planned work, queued for the notifier."""
