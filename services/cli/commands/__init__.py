"""The `temper` commands that talk to the API. They reach it through the SDK (`temper_client`) only;
an import contract in pyproject.toml keeps server code and raw HTTP out of this package."""
