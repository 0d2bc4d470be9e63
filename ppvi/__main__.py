from ppvi.cli import entry

entry()
