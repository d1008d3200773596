"""Dash app factory, ids, pure figure builders, read-only callbacks, i18n catalogue."""
