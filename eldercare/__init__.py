"""The `eldercare` command: command line and wiring of the platform's services."""
