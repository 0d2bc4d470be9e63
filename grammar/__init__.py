"""The ppvi grammar (grammar/ppvi.lark), shipped as package data."""
